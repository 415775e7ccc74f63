//! Stand-ins for cert-manager's `Issuer` and `Certificate` CRDs, so the cert-manager overlay
//! gets a real server-side dry run on a bed without cert-manager.
//!
//! Not cert-manager's schemas: only the fields our overlay uses, typed as cert-manager
//! documents them (cert-manager.io/docs/reference/api-docs). Unknown fields are not preserved,
//! so kubectl's strict field validation rejects a misspelt field, and the `required` lists
//! catch a missing secret name or issuer.

/// The CRD names, for `kubectl wait` and cleanup.
pub const CRD_NAMES: [&str; 2] = ["issuers.cert-manager.io", "certificates.cert-manager.io"];

pub const STUB_CRDS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: issuers.cert-manager.io
  labels: {kube2hadoop.io/e2e: cert-manager-stub}
spec:
  group: cert-manager.io
  scope: Namespaced
  names: {kind: Issuer, listKind: IssuerList, plural: issuers, singular: issuer}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        required: [spec]
        properties:
          spec:
            type: object
            properties:
              selfSigned:
                type: object
                properties:
                  crlDistributionPoints: {type: array, items: {type: string}}
              ca:
                type: object
                required: [secretName]
                properties:
                  secretName: {type: string}
                  crlDistributionPoints: {type: array, items: {type: string}}
                  ocspServers: {type: array, items: {type: string}}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: certificates.cert-manager.io
  labels: {kube2hadoop.io/e2e: cert-manager-stub}
spec:
  group: cert-manager.io
  scope: Namespaced
  names: {kind: Certificate, listKind: CertificateList, plural: certificates, singular: certificate}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        required: [spec]
        properties:
          spec:
            type: object
            required: [secretName, issuerRef]
            properties:
              secretName: {type: string}
              commonName: {type: string}
              dnsNames: {type: array, items: {type: string}}
              ipAddresses: {type: array, items: {type: string}}
              isCA: {type: boolean}
              duration: {type: string}
              renewBefore: {type: string}
              usages:
                type: array
                items:
                  type: string
                  enum: [signing, digital signature, content commitment, key encipherment,
                    key agreement, data encipherment, cert sign, crl sign, encipher only,
                    decipher only, any, server auth, client auth, code signing, email protection,
                    s/mime, ipsec end system, ipsec tunnel, ipsec user, timestamping,
                    ocsp signing, microsoft sgc, netscape sgc]
              privateKey:
                type: object
                properties:
                  algorithm: {type: string, enum: [RSA, ECDSA, Ed25519]}
                  size: {type: integer}
                  encoding: {type: string, enum: [PKCS1, PKCS8]}
                  rotationPolicy: {type: string, enum: [Never, Always]}
              issuerRef:
                type: object
                required: [name]
                properties:
                  name: {type: string}
                  kind: {type: string}
                  group: {type: string}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;
