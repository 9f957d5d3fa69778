"""`kubectl studio`: the kubectl plugin of the studio operator (console script `kubectl-studio`).

Modules: `main` (arguments, dispatch, exit codes), `kubeclient` (kubeconfig, context, namespace),
`commands` (what each subcommand does against the API server), `describe` and `format` (pure:
effective configuration with its sources, tables and times).
"""
