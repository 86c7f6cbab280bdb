"""The template with other parameter defaults, for the checks that read defaults (cfn-lint, checkov,
`sam validate --lint`): `python -m xpi_tools.template_variant --profile us-gov-west-1 -o F` writes
template.yaml with the samconfig profile's parameter_overrides (and any `--set Name=Value`) as defaults,
so each region's configuration is linted as it deploys (docs/operations.md, "Two regions")."""

import argparse
import re
import shlex
import tomllib
from pathlib import Path

from xpi_tools.checkout import project_root


def profile_parameters(samconfig: Path, profile: str) -> dict[str, str]:
    config = tomllib.loads(samconfig.read_text())
    overrides = str(config[profile]["deploy"]["parameters"].get("parameter_overrides", ""))
    return dict(item.split("=", 1) for item in shlex.split(overrides))


def with_defaults(template: str, values: dict[str, str]) -> str:
    """template.yaml's text with each named parameter's Default line set to its value (quoted)."""
    for name, value in values.items():
        block = re.compile(rf"(^  {re.escape(name)}:\n(?:    .*\n)*?    Default: ).*$", re.MULTILINE)
        template, count = block.subn(rf"\g<1>{_quoted(value).replace('\\', '\\\\')}", template, count=1)
        if count != 1:
            raise ValueError(f"no parameter {name} with a Default in the template")
    return template


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xpi_tools.template_variant", description=__doc__)
    parser.add_argument("--profile", help="a samconfig.toml profile (us-gov-west-1, us-gov-east-1)")
    parser.add_argument("--set", action="append", default=[], help="Name=Value, after the profile's")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args(argv)
    root = project_root()
    values = profile_parameters(root / "samconfig.toml", args.profile) if args.profile else {}
    values.update(item.split("=", 1) for item in args.set)
    Path(args.output).write_text(with_defaults((root / "template.yaml").read_text(), values))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
