{{/* Chart name. */}}
{{- define "spectra.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name prefix of every object: RELEASE-spectra, or RELEASE when it already says spectra. */}}
{{- define "spectra.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "spectra.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select pods: name + instance (+ component, given as .component). */}}
{{- define "spectra.selectorLabels" -}}
app.kubernetes.io/name: {{ include "spectra.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{/* Every object's labels. Call with (dict "root" $ "component" "web"). */}}
{{- define "spectra.labels" -}}
helm.sh/chart: {{ include "spectra.chart" .root }}
{{ include "spectra.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: spectra
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Object names. */}}
{{- define "spectra.operator.name" -}}{{ include "spectra.fullname" . }}-operator{{- end }}
{{- define "spectra.web.name" -}}{{ include "spectra.fullname" . }}-web{{- end }}
{{- define "spectra.alerter.name" -}}{{ include "spectra.fullname" . }}-alerter{{- end }}
{{- define "spectra.probe.name" -}}{{ include "spectra.fullname" . }}-probe{{- end }}
{{- define "spectra.migrations.name" -}}{{ include "spectra.fullname" . }}-migrations{{- end }}
{{- define "spectra.mariadb.name" -}}{{ include "spectra.fullname" . }}-mariadb{{- end }}
{{- define "spectra.secretReader.name" -}}{{ include "spectra.fullname" . }}-secret-reader{{- end }}

{{/* The image of the operator, web, alerter, migrations and (unless probe.browser) the probes. */}}
{{- define "spectra.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "spectra.probeImage" -}}
{{- if .Values.probe.browser }}
{{- printf "%s:%s%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) .Values.image.browserSuffix }}
{{- else }}
{{- include "spectra.image" . }}
{{- end }}
{{- end }}

{{/* The database URL Secret: the generated eval MariaDB one, or the user's. */}}
{{- define "spectra.database.secretName" -}}
{{- if .Values.mariadb.enabled }}{{ include "spectra.mariadb.name" . }}{{ else }}{{ required "database.existingSecret is required (or mariadb.enabled=true for an evaluation database)" .Values.database.existingSecret }}{{ end }}
{{- end }}
{{- define "spectra.database.urlKey" -}}
{{- if .Values.mariadb.enabled }}url{{ else }}{{ .Values.database.urlKey }}{{ end }}
{{- end }}

{{- define "spectra.secretKey.secretName" -}}
{{- default (printf "%s-secret-key" (include "spectra.fullname" .)) .Values.secretKey.existingSecret }}
{{- end }}

{{/* SPECTRA_DATABASE_URL as an EnvVar. */}}
{{- define "spectra.env.database" -}}
- name: SPECTRA_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "spectra.database.secretName" . }}
      key: {{ include "spectra.database.urlKey" . }}
- name: SPECTRA_DATABASE_TIMEOUT_S
  value: {{ .Values.database.timeoutSeconds | default 15 | quote }}
{{- end }}

{{/* Settings shared by the web and the alerter. */}}
{{- define "spectra.env.web" -}}
{{ include "spectra.env.database" . }}
- name: SPECTRA_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "spectra.secretKey.secretName" . }}
      key: {{ .Values.secretKey.key }}
- name: SPECTRA_PUBLIC_URL
  value: {{ .Values.publicUrl | quote }}
{{- with .Values.auth }}
{{- if .jwtKeys.existingSecret }}
- name: SPECTRA_JWT_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ .jwtKeys.existingSecret }}
      key: {{ .jwtKeys.key }}
{{- end }}
- name: SPECTRA_ACCESS_TOKEN_TTL_S
  value: {{ .accessTokenSeconds | quote }}
- name: SPECTRA_SESSION_IDLE_TIMEOUT_S
  value: {{ .sessionIdleSeconds | quote }}
- name: SPECTRA_SESSION_ABSOLUTE_TIMEOUT_S
  value: {{ .sessionAbsoluteSeconds | quote }}
{{- end }}
{{- with .Values.sso }}
{{- if .providers }}
{{- $sso := . }}
- name: SPECTRA_SSO_PROVIDERS
  value: {{ toJson .providers | quote }}
{{- range .providers }}
{{- if not (hasKey $sso.secretKeys (toString .client_secret_env)) }}
{{- fail (printf "sso.secretKeys has no key for %s, the client_secret_env of provider %s" (toString .client_secret_env) (toString .name)) }}
{{- end }}
{{- end }}
{{- range $var, $key := .secretKeys }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef:
      name: {{ required "sso.existingSecret: the Secret with the client secrets of sso.providers" $sso.existingSecret }}
      key: {{ $key }}
{{- end }}
{{- end }}
{{- end }}
- name: SPECTRA_SECRETS
  value: kubernetes
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}

{{/* Provider keys from providers.existingSecret; only= limits to some variables. */}}
{{- define "spectra.env.providers" -}}
{{- $root := .root }}
{{- if $root.Values.providers.existingSecret }}
{{- range $var, $key := $root.Values.providers.keys }}
{{- if or (not $.only) (has $var $.only) }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.providers.existingSecret }}
      key: {{ $key }}
      optional: true
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Restricted Pod Security: pod level. */}}
{{- define "spectra.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Restricted Pod Security: container level. */}}
{{- define "spectra.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "spectra.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* nodeSelector / tolerations / affinity: the workload's own, else the top-level defaults. */}}
{{- define "spectra.placement" -}}
{{- $w := .workload }}
{{- $v := .root.Values }}
{{- with (default $v.nodeSelector $w.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default $v.tolerations $w.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default $v.affinity $w.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The operator's config file: values.operator.config plus the fields the chart owns. */}}
{{- define "spectra.operator.config" -}}
{{- $cfg := deepCopy .Values.operator.config }}
{{- $probe := $cfg.probe }}
{{- $_ := set $probe "image" (include "spectra.probeImage" .) }}
{{- $_ := set $probe "imagePullPolicy" .Values.image.pullPolicy }}
{{- $_ := set $probe "serviceAccountName" (include "spectra.probe.name" .) }}
{{- $_ := set $probe "imagePullSecrets" .Values.imagePullSecrets }}
{{- $env := list
  (dict "name" "SPECTRA_DATABASE_URL" "valueFrom" (dict "secretKeyRef" (dict "name" (include "spectra.database.secretName" .) "key" (include "spectra.database.urlKey" .))))
  (dict "name" "SPECTRA_DATABASE_TIMEOUT_S" "value" (.Values.database.timeoutSeconds | default 15 | toString))
  (dict "name" "SPECTRA_SECRETS" "value" "kubernetes")
}}
{{- $_ := set $probe "env" (concat $env ($probe.env | default list)) }}
{{- $web := $cfg.web }}
{{- $_ := set $web "serviceName" (include "spectra.web.name" .) }}
{{- $_ := set $web "servicePort" (int .Values.web.service.port) }}
{{- if not $web.publicUrl }}
{{- $_ := set $web "publicUrl" (.Values.publicUrl | default nil) }}
{{- end }}
{{- $_ := set $cfg "namespace" .Release.Namespace }}
{{- $_ := set $cfg "ownerDeployment" (include "spectra.operator.name" .) }}
{{- $_ := set $cfg "instance" .Release.Name }}
{{- $_ := set $cfg "peeringName" .Values.operator.peering.name }}
{{- toYaml $cfg }}
{{- end }}

{{/* NetworkPolicy egress rules: DNS, API server, database. */}}
{{- define "spectra.np.dns" -}}
- ports:
  {{- range .Values.networkPolicy.dns.ports }}
    - port: {{ . }}
      protocol: UDP
    - port: {{ . }}
      protocol: TCP
  {{- end }}
{{- end }}
{{- define "spectra.np.apiServer" -}}
- ports:
  {{- range .Values.networkPolicy.apiServer.ports }}
    - port: {{ . }}
      protocol: TCP
  {{- end }}
  {{- with .Values.networkPolicy.apiServer.cidrs }}
  to:
    {{- range . }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  {{- end }}
{{- end }}
{{- define "spectra.np.database" -}}
{{- if .Values.mariadb.enabled }}
- ports:
    - port: 3306
      protocol: TCP
  to:
    - podSelector:
        matchLabels:
          {{- include "spectra.selectorLabels" (dict "root" . "component" "mariadb") | nindent 10 }}
{{- else }}
- ports:
  {{- range .Values.networkPolicy.database.ports }}
    - port: {{ . }}
      protocol: TCP
  {{- end }}
  {{- with .Values.networkPolicy.database.cidrs }}
  to:
    {{- range . }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  {{- end }}
{{- end }}
{{- end }}
