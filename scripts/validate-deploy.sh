#!/usr/bin/env bash
# Validates the deployment artifacts under deploy/: Prometheus rules and config (with rule unit tests),
# YAML lint, Kubernetes schemas, cross-references between the manifests, the Grafana dashboard (JSON and
# its PromQL), the systemd unit, and the bundled Gatehouse configs when a built binary is present.
#
# Installs what is missing (promtool from Debian's `prometheus`, `yamllint`, the `kubernetes-validate`
# Python package); expects Debian and root or sudo for apt-get. Prints one OK line per check; exits 1
# if any check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION="${K8S_VERSION:-1.29.0}"
VENV="target/validate-deploy-venv"
failures=0

ok()   { printf 'OK    %s\n' "$*"; }
warn() { printf 'WARN  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failures=$((failures + 1)); }
# run NAME CMD...: runs CMD, prints its output only when it fails.
run() {
  local name=$1 out; shift
  if out=$("$@" 2>&1); then ok "$name"; else printf '%s\n' "$out" | sed 's/^/      /'; fail "$name"; fi
}

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  echo "installing: $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ---------------------------------------------------------------- tools
if ! command -v promtool >/dev/null 2>&1; then
  # promtool ships in Debian's prometheus package, which also installs (and on a systemd host starts)
  # a Prometheus server; we only want the tool, so stop and disable the service we caused.
  apt_install prometheus
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
    echo "disabled the prometheus service the package started (only promtool is needed)"
  fi
fi
if ! command -v yamllint >/dev/null 2>&1; then
  apt_install yamllint
fi

# kubernetes-validate: already importable, else pip install; where pip is refused (PEP 668 on Debian's
# python3) or absent, a virtualenv under target/.
KV=()
if python3 -c 'import kubernetes_validate' >/dev/null 2>&1; then
  KV=(python3 -m kubernetes_validate)
elif [ -x "$VENV/bin/python3" ] && "$VENV/bin/python3" -c 'import kubernetes_validate' >/dev/null 2>&1; then
  KV=("$VENV/bin/python3" -m kubernetes_validate)
else
  echo "installing: kubernetes-validate (pip)"
  if python3 -m pip --version >/dev/null 2>&1 \
     && python3 -m pip install --quiet kubernetes-validate >/dev/null 2>&1 \
     && python3 -c 'import kubernetes_validate' >/dev/null 2>&1; then
    KV=(python3 -m kubernetes_validate)
  else
    echo "pip into python3 refused or unavailable; using a virtualenv in $VENV"
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
      apt_install python3-venv
    fi
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python3" -m pip install --quiet kubernetes-validate
    KV=("$VENV/bin/python3" -m kubernetes_validate)
  fi
fi
# PyYAML comes with kubernetes-validate; the cross-reference check runs in the same interpreter.
PY="${KV[0]}"

echo "tools: $(promtool --version 2>&1 | head -n1); yamllint $(yamllint --version 2>&1 | awk '{print $2}');" \
  "kubernetes-validate $("${KV[@]}" --version 2>&1) (schemas $K8S_VERSION)"

# ---------------------------------------------------------------- Prometheus
run "promtool check rules deploy/prometheus/alerts.yml" promtool check rules deploy/prometheus/alerts.yml
run "promtool check config deploy/prometheus/prometheus.yml" promtool check config deploy/prometheus/prometheus.yml
run "promtool test rules deploy/prometheus/alerts_test.yml" promtool test rules deploy/prometheus/alerts_test.yml

# ---------------------------------------------------------------- YAML
run "yamllint -c deploy/.yamllint --strict deploy/" yamllint -c deploy/.yamllint --strict deploy/

# ---------------------------------------------------------------- Kubernetes
for f in deploy/kubernetes/*.yaml; do
  case "$(basename "$f")" in
    kustomization.yaml) continue ;;    # not an API object; its references are checked below
    servicemonitor.yaml) continue ;;   # a CRD (Prometheus Operator): no bundled schema; checked below
  esac
  run "kubernetes-validate --strict -k $K8S_VERSION $f" "${KV[@]}" --strict --quiet -k "$K8S_VERSION" "$f"
done

run "kubernetes cross-references (kustomization, labels, ports, config mount, grace periods)" "$PY" - <<'PY'
import re, sys, pathlib, yaml
try:
    import tomllib
except ModuleNotFoundError:
    tomllib = None
d = pathlib.Path("deploy/kubernetes")
errs = []
kust = yaml.safe_load((d / "kustomization.yaml").read_text())
docs = {}
for r in kust["resources"]:
    p = d / r
    if not p.exists():
        errs.append(f"kustomization.yaml: resource {r} does not exist"); continue
    for doc in yaml.safe_load_all(p.read_text()):
        docs[doc["kind"]] = doc
for f in d.glob("*.yaml"):
    if f.name != "kustomization.yaml" and f.name not in kust["resources"]:
        errs.append(f"{f.name} is not listed in kustomization.yaml")
dep, svc, cm = docs["Deployment"], docs["Service"], docs["ConfigMap"]
sm, hpa, pdb = docs["ServiceMonitor"], docs["HorizontalPodAutoscaler"], docs["PodDisruptionBudget"]
tpl = dep["spec"]["template"]
labels = tpl["metadata"]["labels"]
def matches(sel):
    return all(labels.get(k) == v for k, v in sel.items())
if not matches(dep["spec"]["selector"]["matchLabels"]): errs.append("deployment selector does not match its template")
if not matches(svc["spec"]["selector"]): errs.append("service selector does not match the pods")
if not matches(pdb["spec"]["selector"]["matchLabels"]): errs.append("pdb selector does not match the pods")
if not all(svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()):
    errs.append("servicemonitor selector does not match the service")
if sm["apiVersion"] != "monitoring.coreos.com/v1": errs.append("servicemonitor apiVersion")
c = tpl["spec"]["containers"][0]
cports = {p["name"]: p["containerPort"] for p in c["ports"]}
for p in svc["spec"]["ports"]:
    if p["targetPort"] not in cports: errs.append(f"service port {p['name']}: no container port {p['targetPort']}")
sports = {p["name"] for p in svc["spec"]["ports"]}
for e in sm["spec"]["endpoints"]:
    if e["port"] not in sports: errs.append(f"servicemonitor endpoint port {e['port']} is not a service port")
for probe in ("readinessProbe", "livenessProbe"):
    if c[probe]["httpGet"]["port"] not in cports: errs.append(f"{probe} port is not a container port")
if hpa["spec"]["scaleTargetRef"]["name"] != dep["metadata"]["name"]: errs.append("hpa target is not the deployment")
vols = {v["name"]: v for v in tpl["spec"]["volumes"]}
for m in c["volumeMounts"]:
    v = vols.get(m["name"])
    if v is None: errs.append(f"volumeMount {m['name']}: no such volume"); continue
    if "configMap" in v:
        if v["configMap"]["name"] != cm["metadata"]["name"]: errs.append("config volume does not name the ConfigMap")
        if "subPath" in m: errs.append("config mounted with subPath: updates would not propagate (no hot reload)")
        cfg_path = c["args"][c["args"].index("--config") + 1]
        if cfg_path.rsplit("/", 1) != [m["mountPath"].rstrip("/"), next(iter(cm["data"]))]:
            errs.append(f"--config {cfg_path} is not the ConfigMap key under {m['mountPath']}")
toml_text = next(iter(cm["data"].values()))
if tomllib:
    cfg = tomllib.loads(toml_text)
    grace = cfg["server"].get("grace_period", "10s")
else:
    grace = re.search(r'grace_period\s*=\s*"([^"]+)"', toml_text).group(1)
mg = re.fullmatch(r"(\d+)s", grace)
pre = c["lifecycle"]["preStop"]["exec"]["command"]
if not mg: errs.append(f"grace_period {grace!r}: expected whole seconds here")
elif pre[0] == "sleep" and int(pre[1]) + int(mg.group(1)) >= tpl["spec"]["terminationGracePeriodSeconds"]:
    errs.append("terminationGracePeriodSeconds must exceed preStop sleep + grace_period")
if tomllib:
    admin_port = int(cfg["server"]["admin_listen"].rsplit(":", 1)[1])
    if admin_port != cports["admin"]: errs.append("server.admin_listen port is not the container's admin port")
    listen_ports = {int(a.rsplit(":", 1)[1]) for a in cfg["server"]["listen"]}
    if cports["http"] not in listen_ports: errs.append("server.listen does not include the container's http port")
for e in errs: print(e)
sys.exit(1 if errs else 0)
PY

# ---------------------------------------------------------------- Grafana
run "python3 -m json.tool deploy/grafana/gatehouse-dashboard.json" python3 -m json.tool deploy/grafana/gatehouse-dashboard.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Every panel query must be valid PromQL: wrap them as recording rules (Grafana variables replaced).
if "$PY" - "$tmp/dashboard-rules.yml" <<'PY'
import json, sys, yaml
d = json.load(open("deploy/grafana/gatehouse-dashboard.json"))
assert d["schemaVersion"] == 39, "schemaVersion must be 39"
names = {v["name"]: v for v in d["templating"]["list"]}
assert names["datasource"]["type"] == "datasource" and names["datasource"]["query"] == "prometheus"
assert {"route", "connector"} <= names.keys()
rules = []
for p in d["panels"]:
    for t in p.get("targets", []):
        e = t["expr"]
        for a, b in (("$__rate_interval", "1m"), ("$__range", "1h"), ("$route", ".*"), ("$connector", ".*")):
            e = e.replace(a, b)
        rules.append({"record": f"dashboard:panel{p['id']}:{t['refId']}", "expr": e})
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[1], "w"))
PY
then
  run "dashboard PromQL (promtool check rules)" promtool check rules "$tmp/dashboard-rules.yml"
else
  fail "dashboard structure (schemaVersion, variables)"
fi

# ---------------------------------------------------------------- systemd
if command -v systemd-analyze >/dev/null 2>&1; then
  # The binary is usually not installed here; verify a copy whose commands point at /bin/true so
  # the directives themselves are checked. Non-fatal: containers often lack a working systemd.
  mkdir -p "$tmp/unit"
  sed 's|/usr/local/bin/gatehouse|/bin/true|g' deploy/systemd/gatehouse.service >"$tmp/unit/gatehouse.service"
  if out=$(systemd-analyze verify "$tmp/unit/gatehouse.service" 2>&1) && [ -z "$out" ]; then
    ok "systemd-analyze verify deploy/systemd/gatehouse.service"
  else
    printf '%s\n' "$out" | sed 's/^/      /'
    warn "systemd-analyze verify deploy/systemd/gatehouse.service reported the above (not fatal)"
  fi
else
  warn "systemd-analyze not found: deploy/systemd/gatehouse.service not verified"
fi

# ---------------------------------------------------------------- Gatehouse configs
# With a built binary, `gatehouse check` the bundled configs; their upstream names (echo, cluster DNS)
# do not resolve here, so they are swapped for localhost first.
bin=""
for b in target/debug/gatehouse target/release/gatehouse; do
  if [ -x "$b" ]; then bin=$b; break; fi
done
if [ -n "$bin" ]; then
  sed 's/"echo:9000"/"localhost:9000"/' deploy/docker/gatehouse.toml >"$tmp/docker.toml"
  run "$bin check deploy/docker/gatehouse.toml (upstream host -> localhost)" "$bin" check --config "$tmp/docker.toml"
  "$PY" -c 'import sys, yaml; print(next(iter(yaml.safe_load(open(sys.argv[1]))["data"].values())), end="")' \
    deploy/kubernetes/configmap.yaml | sed 's/"orders\.default\.svc\.cluster\.local:8080"/"localhost:8080"/' >"$tmp/configmap.toml"
  run "$bin check deploy/kubernetes/configmap.yaml (upstream host -> localhost)" "$bin" check --config "$tmp/configmap.toml"
else
  warn "no target/*/gatehouse binary: the bundled configs were not checked with gatehouse check"
fi

if [ "$failures" -gt 0 ]; then
  echo "validate-deploy: $failures check(s) failed"
  exit 1
fi
echo "validate-deploy: all checks passed"
