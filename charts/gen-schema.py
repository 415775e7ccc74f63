#!/usr/bin/env python3
"""Writes kube2hadoop/values.schema.json (stdout): `charts/gen-schema.py > charts/kube2hadoop/values.schema.json`.

The schema is written here, compactly, and checked for staleness by charts/check-drift.sh. Every
object users touch is closed (additionalProperties: false), so a misspelt key fails `helm
install`/`template` instead of being ignored. The token-service config and iddecorator policy
parts mirror their files' keys (token-service/src/config/file.rs, iddecorator/src/policy.rs),
minus what the chart sets itself (mounted paths, images, kinds: see values.yaml).
"""
import json
S = {"type": "string"}
B = {"type": "boolean"}
I = {"type": "integer"}
def obj(props, required=(), desc=None, closed=True):
    o = {"type": "object", "properties": props}
    if closed: o["additionalProperties"] = False
    if required: o["required"] = list(required)
    if desc: o["description"] = desc
    return o
def arr(items, **kw): return {"type": "array", "items": items, **kw}
def ref(n): return {"$ref": f"#/definitions/{n}"}
strs = arr(S)
defs = {
  "image": obj({"registry": S, "repository": {"type": "string", "minLength": 1}, "tag": S,
                "pullPolicy": {"enum": ["", "Always", "IfNotPresent", "Never"]}}),
  "quantity": {"type": ["string", "number"]},
  "resources": obj({"requests": {"type": "object", "additionalProperties": ref("quantity")},
                    "limits": {"type": "object", "additionalProperties": ref("quantity")}}),
  "labels": {"type": "object", "additionalProperties": S},
  "objects": arr({"type": "object"}),
  "tls": obj({"existingSecret": S, "cert": S, "key": S}),
  "peers": arr({"type": "object"}, description="NetworkPolicyPeer list; empty: any source"),
}
pod = lambda extra: {"replicas": {"type": "integer", "minimum": 1}, "resources": ref("resources"),
  "nodeSelector": ref("labels"), "tolerations": ref("objects"), "priorityClassName": S,
  "extraVolumes": ref("objects"), "extraVolumeMounts": ref("objects"), **extra}
policy = obj({
  "trustedControllers": arr(obj({"username": {"type": "string", "minLength": 1}, "ownerKinds": strs}, ["username", "ownerKinds"])),
  "podAccessAdmins": obj({"groups": strs, "users": strs}),
  "usernames": obj({"stripPrefixes": strs, "rewrite": obj({"pattern": S, "replacement": S}, ["pattern", "replacement"]),
                    "serviceAccounts": ref("labels")}),
  "injection": obj({"tokenServiceUrl": {"type": "string", "pattern": "^https://"},
                    "caConfigMap": obj({"name": {"type": "string", "minLength": 1}, "key": S}, ["name"]),
                    "caFile": S, "caPemFile": S, "deadline": S, "resources": {"type": "object"},
                    "securityContext": {"type": "object"}, "tokenExpirationSeconds": {"type": "integer", "minimum": 600}},
                   desc="policy.example.yaml's injection, but image and imagePullPolicy (images.initFetcher)"),
}, desc="iddecorator/policy.example.yaml, but kinds (extraKinds)")
config = obj({
  "identityModes": arr({"enum": ["sa-token", "ip"]}, minItems=1, uniqueItems=True),
  "saTokenOrigin": {"enum": ["pod", "any"]},
  "namespaceSelector": S,
  "kerberos": obj({"principal": {"type": "string", "minLength": 1}}, ["principal"]),
  "renewer": S,
  "nameservices": arr(obj({"name": {"type": "string", "minLength": 1},
      "namenodes": arr(obj({"http": S, "rpc": S}, ["http", "rpc"]), minItems=1), "tokenService": S}, ["name", "namenodes"])),
  "kms": arr(obj({"name": S, "urls": arr(S, minItems=1), "tokenService": S}, ["name", "urls", "tokenService"])),
  "yarn": arr(obj({"name": {"type": "string", "minLength": 1},
      "resourceManagers": arr(obj({"http": S, "rpc": S}, ["http", "rpc"]), minItems=1), "tokenService": S},
      ["name", "resourceManagers"])),
  "hive": arr(obj({"name": {"type": "string", "minLength": 1},
      "metastores": arr({"type": "string", "pattern": "^thrift://"}, minItems=1), "principal": S,
      "tokenSignature": {"type": "string"},
      "minProtection": {"enum": ["authentication", "integrity", "privacy"]}}, ["name", "metastores"])),
  "defaultServices": arr({"type": "string", "enum": ["hdfs", "hive", "kms", "yarn"]}, minItems=1),
  "ldap": obj({k: S for k in ["url", "bindDn", "baseDn", "groupBaseDn", "userFilter", "nameAttribute",
                               "groupFilter", "runAsFilter", "allowedGroup", "caFile"]} |
              {"starttls": B, "timeoutSeconds": I, "poolSize": {"type": "integer", "minimum": 1},
               "cacheTtlSeconds": {"type": "integer", "minimum": 0, "maximum": 300},
               "cacheMaxEntries": {"type": "integer", "minimum": 0}}),
  "usersFile": S,
  "superusers": strs,
  "userMapping": obj({"denyPrefixes": strs, "stripPrefixes": strs, "stripRealm": B, "realms": strs, "lowercase": B}),
  **{k: {"type": "integer", "minimum": 0} for k in ["podRate", "podBurst", "maxHadoopCalls", "hadoopTimeoutSeconds",
      "kubeTimeoutSeconds", "ledgerPeriodSeconds", "leaseDurationSeconds", "leaseRenewDeadlineSeconds"]},
  "tokenReviewCacheTtlSeconds": {"type": "integer", "minimum": 0, "maximum": 60},
  "tokenReviewCacheSize": {"type": "integer", "minimum": 1, "maximum": 1000000},
  "saTokenKeysRefreshSeconds": {"type": "integer", "minimum": 0, "maximum": 300},
}, ["kerberos"], desc="token-service/config.example.yaml, but the mounted paths and stampedKinds, which the chart sets")
def cred(field, desc, pattern=None):
    v = {"type": "string"}
    if pattern: v["pattern"] = pattern
    return obj({"existingSecret": S, field: v}, desc=desc)
schema = {
  "$schema": "http://json-schema.org/draft-07/schema#",
  "title": "kube2hadoop chart values (values.yaml says what each is)",
  "type": "object", "additionalProperties": False,
  "definitions": defs,
  "properties": {
    "namespace": obj({"create": B}),
    "images": obj({"iddecorator": ref("image"), "tokenService": ref("image"), "initFetcher": ref("image")}),
    "iddecorator": obj(pod({"policy": policy,
        "networkPolicy": obj({"from": ref("peers"), "egress": arr({"type": "object"})})})),
    "tokenService": obj(pod({"hostAliases": arr(obj({"ip": S, "hostnames": strs}, ["ip", "hostnames"])),
        "service": obj({"clusterIP": S}), "config": config,
        "networkPolicy": obj({"from": ref("peers")})})),
    "secrets": obj({
      "keytab": cred("base64", "key kube2hadoop.keytab; base64 of the keytab file", r"^[A-Za-z0-9+/=\s]*$"),
      "krb5Conf": cred("content", "key krb5.conf"),
      "ldapBindPassword": cred("value", "key bind-password"),
      "stampKey": cred("value", "key stamp.key: base64 keys, one per line"),
    }),
    "certManager": obj({"enabled": B,
        "issuerRef": {"anyOf": [obj({}), obj({"group": S, "kind": {"enum": ["Issuer", "ClusterIssuer"]}, "name": {"type": "string", "minLength": 1}}, ["kind", "name"])]},
        "duration": S, "renewBefore": S}),
    "certificates": obj({"caBundle": S, "iddecorator": ref("tls"), "tokenService": ref("tls")}),
    "caConfigMap": obj({"namespaces": arr({"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}, uniqueItems=True)}),
    "webhook": obj({"namespaceSelector": obj({"matchLabels": ref("labels"),
        "matchExpressions": arr(obj({"key": {"type": "string", "minLength": 1},
            "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]}, "values": strs}, ["key", "operator"]))}),
        "timeoutSeconds": {"type": "integer", "minimum": 1, "maximum": 30}}),
    "extraKinds": arr(obj({"group": {"type": "string", "pattern": "^[a-z0-9.-]+$"},
        "kind": {"type": "string", "pattern": "^[A-Za-z0-9]+$"},
        "resource": {"type": "string", "pattern": "^[a-z0-9]+$"}, "templatePaths": strs},
        ["group", "kind", "resource"])),
  },
}
print(json.dumps(schema, indent=2))
