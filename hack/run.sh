#!/usr/bin/env bash
# `make run`: a first look on a fresh machine. Control plane, CRDs, roles, a loopback S3 endpoint
# with a sample bucket, the operator, the samples in namespace `demo`, then the studios' status.
set -euo pipefail
cd "$(dirname "$0")/.."
export KUBECONFIG=$PWD/.cluster/kubeconfig
PY=.venv/bin/python
NS=${DEMO_NAMESPACE:-demo}
KUBECTL="kubectl"

$PY hack/cluster.py up
$KUBECTL apply --server-side --force-conflicts -f crds/ >/dev/null
$KUBECTL wait --for=condition=Established crd --all --timeout=60s >/dev/null
if [ -f manifests/rbac/user-roles.yaml ]; then
  $KUBECTL apply --server-side --force-conflicts -f manifests/rbac/user-roles.yaml >/dev/null
fi
if [ -f hack/s3.py ]; then $PY hack/s3.py up; fi
# The operator's S3 trust: the loopback endpoint counts as administrator-allowed and the sample
# buckets are bound to $NS (hack/operator.sh; docs/storage.md, "Endpoint and bucket trust").
DEMO_NAMESPACE=$NS bash hack/operator.sh up
$KUBECTL create namespace "$NS" --dry-run=client -o yaml | $KUBECTL apply -f - >/dev/null
# The sample DataLinks name the loopback S3 endpoint; this checkout's server runs on its own port.
S3_ENDPOINT=$($PY hack/s3.py endpoint)
$KUBECTL kustomize manifests/samples | sed "s#http://127.0.0.1:9000#$S3_ENDPOINT#g" \
  | $KUBECTL apply -n "$NS" -f -
# The JupyterLab sample on the real node, when it came up (hack/node.py; kwok only otherwise).
NODE_SAMPLE=$($PY hack/node.py sample)
if [ -n "$NODE_SAMPLE" ]; then
  echo "$NODE_SAMPLE" | $KUBECTL apply -n "$NS" -f -
fi
echo
echo "Waiting for rnaseq-analysis to start (Starting -> Running)..."
for _ in $(seq 1 60); do
  phase=$($KUBECTL get studio rnaseq-analysis -n "$NS" -o jsonpath='{.status.phase}' 2>/dev/null || true)
  [ "$phase" = "Running" ] && break
  sleep 1
done
if [ -n "$NODE_SAMPLE" ]; then
  echo "Waiting for jupyterlab on the real node (image pull and JupyterLab start: up to 3 min)..."
  for _ in $(seq 1 180); do
    phase=$($KUBECTL get studio jupyterlab -n "$NS" -o jsonpath='{.status.phase}' 2>/dev/null || true)
    [ "$phase" = "Running" ] || [ "$phase" = "Errored" ] && break
    sleep 1
  done
fi
echo
$KUBECTL get computeenvironments,datalinks,studios -n "$NS"
echo
$KUBECTL get pods,services -n "$NS" -l app.kubernetes.io/managed-by=studio-operator
cat <<MSG

Everything runs on loopback (the operator's health and metrics endpoints too). The operator trusts
the loopback S3 endpoint and lets namespace $NS reach the sample buckets with its own identity.
Next steps:
  export KUBECONFIG=$KUBECONFIG
  kubectl describe studio rnaseq-analysis -n $NS        # status, conditions, events
  .venv/bin/kubectl-studio ls -n $NS                     # the kubectl plugin (kubectl studio ...)
  kubectl patch studio survival-models -n $NS --type merge -p '{"spec":{"state":"Running"}}'
  tail -f .cluster/logs/operator.log
Stop everything (operator, S3 endpoint, control plane) with: make operator-down cluster-down
MSG
if [ -n "$NODE_SAMPLE" ]; then
  cat <<MSG

JupyterLab really runs on the local node ($($KUBECTL get studio jupyterlab -n "$NS" -o jsonpath='{.status.phase}')). Open it:
  make plugin-install && export PATH=\$HOME/.local/bin:\$PATH
  kubectl studio connect jupyterlab -n $NS    # then open the URL it prints, e.g. http://127.0.0.1:8888/lab
MSG
fi
