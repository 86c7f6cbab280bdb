# xpi - everything a new machine needs comes from here. `make demo` and `make test` do all set-up.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.13 (the Lambda runtime): pyenv's if present, else whatever python3.13 is on PATH.
PYTHON313 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) $(shell command -v python3.13 2>/dev/null))
VENV      := .venv
BIN       := $(VENV)/bin
RUNTIME   := .xpi/lambda-runtime
CHECKOV   := .xpi/tools/checkov
PARLIAMENT := .xpi/tools/parliament
LITELLM    := .xpi/tools/litellm
AWSCLI    := .xpi/tools/awscli
VARIANTS  := .xpi/template-variants
HOST_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x86_64)
export SAM_CLI_TELEMETRY := 0
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help venv runtime build idp browser-deps demo up test lint typecheck template-check unit contract integration bench bench-cost bench-batch-jobs bench-cache litellm bytecode lock clean awscli security-table faults soak network net-deps

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(BIN)/.installed: requirements/dev.txt pyproject.toml
	@test -n "$(PYTHON313)" || { echo "Python 3.13 not found (pyenv install 3.13 or put python3.13 on PATH)"; exit 1; }
	$(PYTHON313) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements/dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

venv: $(BIN)/.installed ## create the virtual environment with pinned tools

# Like Lambda's /var/runtime: Python 3.13 and the runtime interface client, nothing of the dev tools.
$(RUNTIME)/.installed: requirements/lambda-runtime.txt
	rm -rf $(RUNTIME) && $(PYTHON313) -m venv $(RUNTIME)
	$(RUNTIME)/bin/pip install --quiet -r requirements/lambda-runtime.txt
	touch $@

runtime: $(RUNTIME)/.installed ## the Python the local stack runs functions with (3.13 + awslambdaric)

# checkov pins urllib3 1.x, which the Lambda package's pins exclude: it gets a venv of its own.
$(CHECKOV)/.installed: requirements/checkov.txt
	rm -rf $(CHECKOV) && $(PYTHON313) -m venv $(CHECKOV)
	$(CHECKOV)/bin/pip install --quiet -r requirements/checkov.txt
	touch $@

# parliament (the IAM policy linter behind `xpi iam lint`) imports pkg_resources, which the dev venv's
# setuptools no longer ships: it gets a venv of its own too, run by tools/xpi_tools/iam/lint.py.
$(PARLIAMENT)/.installed: requirements/parliament.txt
	rm -rf $(PARLIAMENT) && $(PYTHON313) -m venv $(PARLIAMENT)
	$(PARLIAMENT)/bin/pip install --quiet -r requirements/parliament.txt
	touch $@

# The AWS CLI a user installs from PyPI, for the README's recipe (tests/integration runs it as written);
# its own venv, so its pins never meet the dev tools'.
$(AWSCLI)/.installed: requirements/awscli.txt
	rm -rf $(AWSCLI) && $(PYTHON313) -m venv $(AWSCLI)
	$(AWSCLI)/bin/pip install --quiet -r requirements/awscli.txt
	touch $@

awscli: $(AWSCLI)/.installed ## the AWS CLI from PyPI in its own venv (.xpi/tools/awscli/bin/aws)

build: venv ## sam build for this machine's architecture (cached), with its bytecode
	$(BIN)/sam build --cached --parameter-overrides Architecture=$(HOST_ARCH)
	$(MAKE) --no-print-directory bytecode

# Lambda's /var/task is read-only: without .pyc files in the package, every cold start compiles each
# module it imports (boto3, pydantic, Powertools, xpi) from source, and throws the result away.
# unchecked-hash: valid whatever mtimes the zip gives the sources (bench/bench_cold_start.py measures it).
# Each function's folder is compiled as /var/task, where Lambda puts it: the same source gives the same
# bytes in every function (one package, as `sam build` copied it), and tracebacks name Lambda's paths.
bytecode: ## compile .aws-sam/build to .pyc with the Lambda runtime's Python (run after any sam build)
	for dir in .aws-sam/build/*/; do \
	  $(PYTHON313) -m compileall -q -j0 --invalidation-mode unchecked-hash -s "$${dir%/}" -p /var/task "$${dir%/}" \
	    > /dev/null || exit 1; \
	done

demo: venv runtime build ## offline demo: local stack up, sample requests, results and lineage, stop
	$(BIN)/xpi demo

up: venv runtime build idp ## run the local stack until Ctrl-C
	$(BIN)/xpi local up --no-build

# The local OIDC provider the dashboard's sign-in is tested against (panva's oidc-provider, pinned in
# tools/idp/package-lock.json, from the npm registry). Without it the local stack has no sign-in.
IDP := tools/idp/node_modules/.installed
$(IDP): tools/idp/package-lock.json
	cd tools/idp && npm ci --no-audit --no-fund --silent
	touch $@

idp: $(IDP) ## the local OIDC provider (npm ci in tools/idp) the dashboard sign-in runs against locally

browser-deps: ## Debian's chromium for tests/browser (as root; Playwright downloads no browser)
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

net-deps: ## ip and iptables for the real network-fault tests (as root; Debian's iproute2 and iptables)
	@command -v iptables >/dev/null && command -v ip >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iproute2 iptables >/dev/null; }

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy functions/xpi tools/xpi_tools

template-check: venv $(CHECKOV)/.installed $(PARLIAMENT)/.installed ## sam validate --lint, cfn-lint, checkov, IAM policy lint
	$(BIN)/sam validate --lint
	$(BIN)/cfn-lint template.yaml network/govcloud.yaml network/commercial.yaml
	$(CHECKOV)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml -f network/govcloud.yaml -f network/commercial.yaml
	@# the same with the network options on (the VPC, a VPN, a transit gateway): xpi_tools.template_variants
	$(BIN)/python -m xpi_tools.template_variants $(VARIANTS) > /dev/null
	for t in $(VARIANTS)/template-vpc.json network/govcloud.yaml network/commercial.yaml $(VARIANTS)/govcloud-*.json $(VARIANTS)/commercial-*.json; do \
	  $(BIN)/sam validate --lint -t $$t || exit 1; \
	done
	$(BIN)/cfn-lint $(VARIANTS)/*.json
	$(CHECKOV)/bin/checkov --quiet --compact --skip-download --framework cloudformation $$(for t in $(VARIANTS)/*.json; do echo -f $$t; done)
	@# each region's samconfig profile with every two-region option on (the same module)
	for region in us-gov-west-1 us-gov-east-1; do \
	  $(BIN)/sam validate --lint --region $$region -t $(VARIANTS)/template-$$region.json && \
	  $(BIN)/cfn-lint --regions $$region -- $(VARIANTS)/template-$$region.json || exit 1; \
	done
	$(BIN)/xpi iam lint

unit: venv $(PARLIAMENT)/.installed
	$(BIN)/pytest tests/unit -q

contract: venv
	$(BIN)/pytest tests/contract -q

integration: venv runtime build idp $(AWSCLI)/.installed
	$(BIN)/pytest tests/integration -q

test: venv runtime build idp browser-deps net-deps $(AWSCLI)/.installed ## lint, type check, template checks; unit, contract, integration and container tests
	$(MAKE) --no-print-directory lint typecheck template-check
	$(BIN)/pytest tests -q

faults: venv runtime build ## the fault suite at full size (100-150 requests per scenario), printing its table
	XPI_FAULTS_SCALE=full $(BIN)/pytest tests/faults -q -s

soak: venv runtime build ## 10,000 requests with mixed faults (XPI_SOAK_N), printing the local stack's memory
	XPI_FAULTS_SOAK=1 $(BIN)/pytest tests/faults/test_soak.py -q -s

network: venv runtime build net-deps ## 1,000 requests across a blackholed egress path (network namespaces, as root): failover, fail-back, figures
	XPI_NETWORK_SCALE=full $(BIN)/pytest tests/integration/test_egress_paths.py -q -s

regions: venv runtime build ## two regions on two local stacks: the primary out, then killed, under load: failover time, lost/doubled
	XPI_REGIONS_SCALE=full $(BIN)/pytest tests/integration/test_regions.py -q -s

security-table: venv ## docs/security.md's role x action table, from the latest test session's IAM call logs
	$(BIN)/xpi iam usage --calls "$$(ls -td .xpi/iam-calls/sessions/*/ | head -1)" --write-doc docs/security.md
# The LiteLLM proxy bench/bench_sync.py compares against: a pinned release in a venv of its own, never the
# project's (requirements/litellm.in says which releases are excluded and why).
$(LITELLM)/.installed: requirements/litellm.txt
	rm -rf $(LITELLM) && $(PYTHON313) -m venv $(LITELLM)
	$(LITELLM)/bin/pip install --quiet -r requirements/litellm.txt
	touch $@

litellm: $(LITELLM)/.installed ## the pinned LiteLLM proxy bench/bench_sync.py runs beside xpi's sync path

bench: venv runtime build litellm ## benchmarks (each prints its figures beside a baseline)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

bench-cost: venv runtime build ## the cost meter: $ per million requests per path beside a minimal API Gateway + Lambda proxy
	$(BIN)/python bench/bench_cost.py

bench-batch-jobs: venv runtime build ## a 10,000-line batch file through xpi both ways (one Bedrock batch job vs on-demand): model cost from lineage, wall time, xpi's $ per line from the cost meter
	$(BIN)/python bench/bench_batch_jobs.py

bench-cache: venv runtime build ## caching: model cost of a workload with repeats and shared prefixes, with and without, and a hit's latency
	$(BIN)/python bench/bench_cache.py

lock: ## re-pin requirements/dev.txt, checkov.txt, awscli.txt, parliament.txt and litellm.txt from their .in files (needs PyPI)
	rm -rf .xpi/lock-venv && $(PYTHON313) -m venv .xpi/lock-venv
	.xpi/lock-venv/bin/pip install --quiet -r requirements/dev.in
	.xpi/lock-venv/bin/pip freeze --exclude-editable | grep -v '^xpi' > requirements/dev.txt
	rm -rf .xpi/lock-venv && $(PYTHON313) -m venv .xpi/lock-venv
	.xpi/lock-venv/bin/pip install --quiet -r requirements/checkov.in
	.xpi/lock-venv/bin/pip freeze > requirements/checkov.txt
	rm -rf .xpi/lock-venv && $(PYTHON313) -m venv .xpi/lock-venv
	.xpi/lock-venv/bin/pip install --quiet -r requirements/parliament.in
	.xpi/lock-venv/bin/pip freeze > requirements/parliament.txt
	rm -rf .xpi/lock-venv && $(PYTHON313) -m venv .xpi/lock-venv
	.xpi/lock-venv/bin/pip install --quiet -r requirements/awscli.in
	.xpi/lock-venv/bin/pip freeze > requirements/awscli.txt
	rm -rf .xpi/lock-venv && $(PYTHON313) -m venv .xpi/lock-venv
	.xpi/lock-venv/bin/pip install --quiet -r requirements/litellm.in
	.xpi/lock-venv/bin/pip freeze > requirements/litellm.txt

clean: ## remove build output and local state (not the venv)
	rm -rf .aws-sam .xpi/local

.PHONY: lambda-image lambda-image-force docker-stop
lambda-image: ## local Lambda base image for offline `sam local invoke` (starts Docker if needed; cached)
	tools/lambda-image/build.sh

lambda-image-force: ## rebuild that image from scratch, Debian base included
	tools/lambda-image/build.sh --force

docker-stop: ## stop the dockerd that tools/lambda-image/ensure-docker.sh started
	tools/lambda-image/ensure-docker.sh --stop

.PHONY: local-invoke container
STATE ?= .xpi/local/stack.json
local-invoke: venv runtime build lambda-image ## sam local invoke FN=<logical id> EVENT=<file> against the local stack (make up's, else its own)
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo "usage: make local-invoke FN=ValidateFunction EVENT=events/validate/workflow-input.json [STATE=.xpi/local/stack.json]"; exit 2; }
	$(BIN)/python tools/lambda-image/local_invoke.py $(FN) $(EVENT) --state-file $(STATE)

container: venv runtime build ## sam local invoke tests of every function (Docker; builds the image, cached)
	$(BIN)/pytest tests/container -q
