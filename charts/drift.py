#!/usr/bin/env python3
"""Compares two renders of kube2hadoop object by object: `drift.py KUSTOMIZE.yaml HELM.yaml`.

Prints a unified diff per differing object and exits 1 on any difference. Before comparing, it
removes only what differs by construction (charts/check-drift.sh says why each is allowed):
- Helm's own labels and annotations (chart, managed-by, instance, version, resource-policy,
  the pod templates' checksum/* annotations);
- Kustomize's hash suffix on generated ConfigMap names, and in what refers to them;
- the text of YAML files in ConfigMaps: compared as parsed YAML (comments and key order differ).
"""
import difflib
import re
import sys

import yaml

HELM_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
}
HELM_ANNOTATIONS = {"helm.sh/resource-policy"}
HASHED = re.compile(r"^(.+)-[a-z0-9]{10}$")


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def key(obj):
    m = obj.get("metadata", {})
    return (obj.get("kind", ""), m.get("namespace", ""), m.get("name", ""))


def prune_meta(meta, drop_labels, drop_annotations):
    """Drops the named labels/annotations (and checksum/*), then empty maps."""
    for field, drop in (("labels", drop_labels), ("annotations", drop_annotations)):
        values = meta.get(field)
        if values is None:
            continue
        for k in list(values):
            if k in drop or (field == "annotations" and k.startswith("checksum/")):
                del values[k]
        if not values:
            del meta[field]


def rename(value, names):
    """Every string equal to a hashed ConfigMap name becomes the unhashed one."""
    if isinstance(value, dict):
        return {k: rename(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [rename(v, names) for v in value]
    if isinstance(value, str):
        return names.get(value, value)
    return value


def normalize(objs, helm_names=None):
    """objs as rendered; helm_names: the chart's ConfigMap names (to unhash Kustomize's)."""
    names = {}
    if helm_names is not None:
        for o in objs:
            if o.get("kind") == "ConfigMap":
                m = HASHED.match(o["metadata"]["name"])
                if m and (o["metadata"].get("namespace", ""), m.group(1)) in helm_names:
                    names[o["metadata"]["name"]] = m.group(1)
    out = {}
    for o in objs:
        o = rename(o, names)
        prune_meta(o.setdefault("metadata", {}), HELM_LABELS, HELM_ANNOTATIONS)
        if not o["metadata"]:
            del o["metadata"]
        template = o.get("spec", {}).get("template", {})
        if "metadata" in template:
            prune_meta(template["metadata"], HELM_LABELS, HELM_ANNOTATIONS)
        if o.get("kind") == "ConfigMap":
            for k, v in o.get("data", {}).items():
                if k.endswith(".yaml"):
                    o["data"][k] = yaml.safe_load(v)
        k = key(o)
        if k in out:
            sys.exit(f"drift.py: {k} rendered twice")
        out[k] = o
    return out


def dump(obj):
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False).splitlines()


def main():
    kustomize_path, helm_path = sys.argv[1:3]
    helm_raw = load(helm_path)
    helm_names = {(key(o)[1], key(o)[2]) for o in helm_raw if o.get("kind") == "ConfigMap"}
    kust = normalize(load(kustomize_path), helm_names)
    helm = normalize(helm_raw)
    differ = 0
    for k in sorted(set(kust) | set(helm)):
        label = "/".join(p for p in k if p)
        if k not in helm:
            print(f"--- {label}: rendered by Kustomize only")
            differ += 1
        elif k not in kust:
            print(f"+++ {label}: rendered by the chart only")
            differ += 1
        elif kust[k] != helm[k]:
            differ += 1
            sys.stdout.writelines(
                line + "\n"
                for line in difflib.unified_diff(
                    dump(kust[k]), dump(helm[k]), f"kustomize {label}", f"helm {label}", lineterm=""
                )
            )
    print(f"{len(kust)} objects from Kustomize, {len(helm)} from the chart, {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
