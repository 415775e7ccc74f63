{{/*
Labels on every object: the Kustomize base's part-of label plus Helm's own (which
charts/check-drift.sh ignores). Selectors and pod templates keep only app.kubernetes.io/name, as
in the base: selectors are immutable, so upgrades from a Kustomize install keep working.
*/}}
{{- define "kube2hadoop.labels" -}}
app.kubernetes.io/part-of: kube2hadoop
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* An image reference from {registry, repository, tag}; call with (list $image $root). */}}
{{- define "kube2hadoop.image" -}}
{{- $img := index . 0 -}}{{- $root := index . 1 -}}
{{- if $img.registry }}{{ $img.registry }}/{{ end }}{{ $img.repository }}:{{ $img.tag | default $root.Chart.AppVersion }}
{{- end }}

{{/* The name of the Secret mounted for a credential: the user's, or the chart's. */}}
{{- define "kube2hadoop.secretName" -}}
{{- $s := index . 0 -}}{{- $default := index . 1 -}}
{{- $s.existingSecret | default $default -}}
{{- end }}

{{/*
Every webhook's namespaceSelector: kube-system and this namespace are always left alone (a
broken iddecorator can then always be repaired), ANDed with webhook.namespaceSelector.
*/}}
{{- define "kube2hadoop.namespaceSelector" -}}
namespaceSelector:
  {{- with .Values.webhook.namespaceSelector.matchLabels }}
  matchLabels:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  matchExpressions:
  - {key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system, {{ .Release.Namespace }}]}
  {{- with .Values.webhook.namespaceSelector.matchExpressions }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
The objects iddecorator stamps: the mutating and the first validating webhook must cover the
same ones (token-service checks the registration), so both use this, plus extraKinds.
*/}}
{{- define "kube2hadoop.stampedRules" -}}
rules:
- apiGroups: [""]
  apiVersions: [v1]
  operations: [CREATE, UPDATE]
  resources: [pods, pods/ephemeralcontainers, replicationcontrollers]
- apiGroups: [apps]
  apiVersions: [v1]
  operations: [CREATE, UPDATE]
  resources: [deployments, replicasets, statefulsets, daemonsets]
- apiGroups: [batch]
  apiVersions: [v1]
  operations: [CREATE, UPDATE]
  resources: [jobs, cronjobs]
- apiGroups: [kubeflow.org]
  apiVersions: ["*"]
  operations: [CREATE, UPDATE]
  resources: [tfjobs, pytorchjobs, mpijobs, xgboostjobs, paddlejobs, mxjobs, jaxjobs]
{{- range .Values.extraKinds }}
- apiGroups: [{{ .group | quote }}]
  apiVersions: ["*"]
  operations: [CREATE, UPDATE]
  resources: [{{ .resource | quote }}]
{{- end }}
{{- end }}

{{/* The webhook configurations' CA: injected by cert-manager, or certificates.caBundle. */}}
{{- define "kube2hadoop.caBundle" -}}
{{- if not .Values.certManager.enabled -}}
caBundle: {{ required "certificates.caBundle (PEM) is required without certManager.enabled: with no CA, the webhooks would block every workload" .Values.certificates.caBundle | b64enc }}
{{- end -}}
{{- end }}

{{/* iddecorator's policy file: the values' policy plus what the chart knows. */}}
{{- define "kube2hadoop.policy" -}}
{{- $p := deepCopy .Values.iddecorator.policy -}}
{{- $inj := $p.injection | default dict -}}
{{- $_ := set $inj "image" (include "kube2hadoop.image" (list .Values.images.initFetcher .)) -}}
{{- with .Values.images.initFetcher.pullPolicy -}}
{{- $_ := set $inj "imagePullPolicy" . -}}
{{- end -}}
{{- if not $inj.tokenServiceUrl -}}
{{- $_ := set $inj "tokenServiceUrl" (printf "https://token-service.%s.svc:8443" .Release.Namespace) -}}
{{- end -}}
{{- $_ := set $p "injection" $inj -}}
{{- if .Values.extraKinds -}}
{{- $kinds := list -}}
{{- range .Values.extraKinds -}}
{{- $kinds = append $kinds (dict "group" .group "kind" .kind "templatePaths" (.templatePaths | default list)) -}}
{{- end -}}
{{- $_ := set $p "kinds" $kinds -}}
{{- end -}}
{{- toYaml $p -}}
{{- end }}

{{/* token-service's config file: the values' config plus the paths of the chart's mounts. */}}
{{- define "kube2hadoop.tokenServiceConfig" -}}
{{- $c := deepCopy .Values.tokenService.config -}}
{{- $_ := set $c "listen" "0.0.0.0:8443" -}}
{{- $_ := set $c "tlsCertFile" "/etc/kube2hadoop/tls/tls.crt" -}}
{{- $_ := set $c "tlsKeyFile" "/etc/kube2hadoop/tls/tls.key" -}}
{{- $_ := set $c "stampKeyFile" "/etc/kube2hadoop/stamp/stamp.key" -}}
{{- $k := $c.kerberos | default dict -}}
{{- $_ := set $k "keytab" "/etc/kube2hadoop/keytab/kube2hadoop.keytab" -}}
{{- $_ := set $k "krb5Conf" "/etc/kube2hadoop/krb5/krb5.conf" -}}
{{- $_ := set $c "kerberos" $k -}}
{{- if $c.ldap -}}
{{- $_ := set $c.ldap "bindPasswordFile" "/etc/kube2hadoop/ldap/bind-password" -}}
{{- end -}}
{{- /* The ledger's Secrets and Lease: where the Role grants them (token-service's default is kube2hadoop). */ -}}
{{- if ne .Release.Namespace "kube2hadoop" -}}
{{- $_ := set $c "ledgerNamespace" .Release.Namespace -}}
{{- end -}}
{{- if .Values.extraKinds -}}
{{- $kinds := list -}}
{{- range .Values.extraKinds -}}
{{- $kinds = append $kinds (printf "%s/%s" .group .kind) -}}
{{- end -}}
{{- $_ := set $c "stampedKinds" $kinds -}}
{{- end -}}
{{- toYaml $c -}}
{{- end }}

{{/* The serving Secret of "iddecorator" or "token-service": cert-manager's, the user's or ours. */}}
{{- define "kube2hadoop.tlsSecret" -}}
{{- $root := index . 0 -}}{{- $name := index . 1 -}}
{{- $c := get (dict "iddecorator" $root.Values.certificates.iddecorator "token-service" $root.Values.certificates.tokenService) $name -}}
{{- if $root.Values.certManager.enabled -}}{{ $name }}-tls{{- else -}}{{ $c.existingSecret | default (printf "%s-tls" $name) }}{{- end -}}
{{- end }}
