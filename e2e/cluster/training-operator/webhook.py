"""The training operator's ValidatingWebhookConfiguration for the local bed.

usage: kubectl create --dry-run=client -o json -f MANIFESTS | webhook.py NAME BASE_URL CA_FILE

MANIFESTS is the module's manifests/base/webhook/manifests.yaml (kubectl turns it into JSON, so
no YAML library is needed). As its kustomize patch does,
the configuration is renamed NAME (the name the operator's cert rotator injects its CA into);
each webhook's Service reference becomes `url: BASE_URL + path`, since the operator runs on
loopback, and the caBundle is set up front so the webhook works before the first injection.
Rules, failure policy and side effects stay as shipped.
"""

import base64
import json
import sys


def main() -> None:
    name, base_url, ca_file = sys.argv[1:4]
    doc = json.load(sys.stdin)
    docs = doc.get("items", []) if doc.get("kind") == "List" else [doc]
    vwc = [d for d in docs if d.get("kind") == "ValidatingWebhookConfiguration"]
    if len(vwc) != 1:
        sys.exit(f"expected one ValidatingWebhookConfiguration, found {len(vwc)}")
    config = vwc[0]
    with open(ca_file, "rb") as f:
        ca_bundle = base64.b64encode(f.read()).decode()
    config["metadata"] = {
        "name": name,
        "labels": {"control-plane": "kubeflow-training-operator"},
    }
    for hook in config["webhooks"]:
        path = hook["clientConfig"]["service"]["path"]
        hook["clientConfig"] = {"url": base_url + path, "caBundle": ca_bundle}
    json.dump(config, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
