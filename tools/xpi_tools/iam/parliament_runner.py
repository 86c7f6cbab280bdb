"""Runs parliament over policy documents; executed by the python of parliament's own venv.

parliament imports pkg_resources, which the dev venv's setuptools no longer has, so it lives in
.xpi/tools/parliament (requirements/parliament.txt) and this script is its only caller: it imports
nothing of xpi. Input on stdin: a JSON list of policy documents, each a JSON string. Output on stdout:
{"version": parliament's version, "findings": one list per document of
{"issue", "severity", "title", "detail", "location"}}.
"""

import json
import sys
import warnings
from typing import Any


def main() -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pkg_resources' deprecation notice, on every import
        import parliament  # type: ignore[import-not-found,unused-ignore]

    documents: list[str] = json.load(sys.stdin)
    results: list[list[dict[str, Any]]] = []
    for document in documents:
        policy = parliament.analyze_policy_string(document)
        findings = []
        for finding in policy.findings:
            enhanced = parliament.enhance_finding(finding)
            findings.append(
                {
                    "issue": enhanced.issue,
                    "severity": enhanced.severity,
                    "title": enhanced.title,
                    "detail": enhanced.detail,
                    "location": enhanced.location,
                }
            )
        results.append(findings)
    json.dump({"version": parliament.__version__, "findings": results}, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
