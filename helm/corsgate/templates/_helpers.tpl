{{/*
Names and labels, in the conventions of `helm create` and Bitnami charts.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "corsgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The fully qualified app name: fullnameOverride, or release-chart (just the release name
when it already contains the chart name). Truncated to 63 characters, the DNS label limit.
*/}}
{{- define "corsgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "corsgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "corsgate.labels" -}}
helm.sh/chart: {{ include "corsgate.chart" . }}
{{ include "corsgate.selectorLabels" . }}
app.kubernetes.io/version: {{ include "corsgate.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: corsgate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels: stable across upgrades, so never the version. */}}
{{- define "corsgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "corsgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "corsgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "corsgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image tag: image.tag or the chart's appVersion; never `latest`. */}}
{{- define "corsgate.imageTag" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion | toString }}
{{- if eq (lower $tag) "latest" }}
{{- fail "image.tag: `latest` is refused; pin a corsgate release (the default is the chart's appVersion)" }}
{{- end }}
{{- $tag }}
{{- end }}

{{/* The image reference: repository@digest when a digest is set, else repository:tag. */}}
{{- define "corsgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "corsgate.imageTag" .) }}
{{- end }}
{{- end }}

{{/* Whether Redis is configured: a URL in values, an existing Secret or sentinels. */}}
{{- define "corsgate.redisEnabled" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret .Values.redis.sentinels }}true{{ end }}
{{- end }}

{{/* Whether the pod gets CORSGATE_REDIS_URL from a Secret. */}}
{{- define "corsgate.redisUrlFromSecret" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret }}true{{ end }}
{{- end }}

{{/* The Secret and key that hold the Redis URL. */}}
{{- define "corsgate.redisSecretName" -}}
{{- if .Values.redis.existingSecret }}
{{- .Values.redis.existingSecret }}
{{- else }}
{{- printf "%s-redis" (include "corsgate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "corsgate.redisSecretKey" -}}
{{- if .Values.redis.existingSecret }}
{{- .Values.redis.existingSecretKey }}
{{- else -}}
redis-url
{{- end }}
{{- end }}

{{/*
TLS on the public port (non-empty when tls.existingSecret names a Secret).
*/}}
{{- define "corsgate.tlsEnabled" -}}
{{- if and .Values.tls .Values.tls.existingSecret }}true{{ end }}
{{- end }}

{{/*
The name of the public port: `https` with TLS, `http` otherwise.
*/}}
{{- define "corsgate.publicPortName" -}}
{{- if include "corsgate.tlsEnabled" . }}https{{ else }}http{{ end }}
{{- end }}

{{/*
corsgate's configuration file (SPEC.md "Configuration"), rendered from values. The admin
server listens on 0.0.0.0 so the kubelet can reach /healthz and /readyz; the Services keep
it off the public port. The Redis URL is not here: it comes from a Secret through
CORSGATE_REDIS_URL, so no password lands in a ConfigMap.
*/}}
{{- define "corsgate.config" -}}
{{- $server := merge (dict "host" "0.0.0.0" "port" (int .Values.containerPorts.http)) (deepCopy (.Values.server | default dict)) -}}
{{- if include "corsgate.tlsEnabled" . }}
{{- $tls := dict "certFile" "/etc/corsgate-tls/tls.crt" "keyFile" "/etc/corsgate-tls/tls.key" "http2" .Values.tls.http2 "minVersion" .Values.tls.minVersion "requestCert" .Values.tls.requestCert }}
{{- if .Values.tls.requestCert }}{{ $_ := set $tls "caFile" "/etc/corsgate-tls/ca.crt" }}{{ end }}
{{- $_ := set $server "tls" $tls }}
{{- end }}
server:
  {{- toYaml $server | nindent 2 }}
admin:
  host: 0.0.0.0
  port: {{ int .Values.containerPorts.admin }}
  {{- if .Values.adminAuth.enabled }}
  auth:
    tokenFile: /var/run/corsgate/admin-token/token
    openMetrics: {{ .Values.adminAuth.openMetrics }}
  {{- end }}
log:
  {{- toYaml (.Values.log | default dict) | nindent 2 }}
{{- if include "corsgate.redisEnabled" . }}
redis:
  {{- toYaml (omit .Values.redis "url" "existingSecret" "existingSecretKey") | nindent 2 }}
{{- end }}
{{- with .Values.websocket }}
websocket:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.plugins }}
plugins:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.observe }}
observe:
  {{- toYaml . | nindent 2 }}
{{- end }}
policies:
  {{- toYaml .Values.policies | nindent 2 }}
routes:
  {{- toYaml .Values.routes | nindent 2 }}
{{- end }}

{{/*
Pod annotation that changes whenever the configuration (or the chart-made Redis Secret)
changes, so `helm upgrade` rolls the pods. Also for a parent chart's pod template in
sidecar mode.
*/}}
{{- define "corsgate.configChecksum" -}}
checksum/config: {{ include "corsgate.config" . | sha256sum }}
{{- if and .Values.redis.url (not .Values.redis.existingSecret) }}
checksum/redis-secret: {{ .Values.redis.url | sha256sum }}
{{- end }}
{{- if and .Values.adminAuth.enabled .Values.adminAuth.token (not .Values.adminAuth.existingSecret) }}
checksum/admin-token: {{ .Values.adminAuth.token | sha256sum }}
{{- end }}
{{- end }}

{{/* Fails on settings that contradict each other. */}}
{{- define "corsgate.validateValues" -}}
{{- if empty .Values.policies }}
{{- fail "policies: no CORS policy is set. The chart ships none, so that no origin is allowed that you did not list. Set the origins your browsers use, e.g. --set-json 'policies.default.origins=[\"https://app.example.com\"]', or a policies: section in your values file (see values.yaml)" }}
{{- end }}
{{- range $name, $policy := .Values.policies }}
{{- if not (kindIs "map" $policy) }}
{{- fail (printf "policies.%s: must be a map of policy settings (origins, credentials, ...); set it, or leave it out" $name) }}
{{- end }}
{{- end }}
{{- $drainSeconds := add (div (int (.Values.server.shutdownGraceMs | default 10000)) 1000) 5 }}
{{- if lt (int .Values.terminationGracePeriodSeconds) (int $drainSeconds) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must cover the preStop sleep and server.shutdownGraceMs (about %d s)" (int .Values.terminationGracePeriodSeconds) (int $drainSeconds)) }}
{{- end }}
{{- if and .Values.adminAuth.enabled (not .Values.adminAuth.existingSecret) (not .Values.adminAuth.token) }}
{{- fail "adminAuth.enabled: set adminAuth.existingSecret (a Secret holding the token under adminAuth.existingSecretKey) or adminAuth.token" }}
{{- end }}
{{- range $i, $route := .Values.routes }}
{{- $policy := $route.policy | default "default" }}
{{- if not (hasKey $.Values.policies $policy) }}
{{- fail (printf "routes[%d].policy: names policy %q, which is not defined under policies" $i $policy) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Node's old-space limit in MiB for NODE_OPTIONS=--max-old-space-size: heap.percentOfMemoryLimit
of resources.limits.memory, so that a leak ends in V8's "JavaScript heap out of memory" (the
container exits and restarts, with the reason in its log) before the kernel OOM-kills it:
under a limit Node alone sizes its heap to about the whole limit. Empty without a memory
limit, with percentOfMemoryLimit 0, or when extraEnv sets NODE_OPTIONS itself. Quantities as
Kubernetes writes them: plain bytes, k/M/G/T, Ki/Mi/Gi/Ti.
*/}}
{{- define "corsgate.maxOldSpaceSizeMiB" -}}
{{- $percent := int (dig "percentOfMemoryLimit" 75 (.Values.heap | default dict)) -}}
{{- $limit := dig "limits" "memory" "" (.Values.resources | default dict) -}}
{{- $own := false -}}
{{- range .Values.extraEnv }}{{ if eq .name "NODE_OPTIONS" }}{{ $own = true }}{{ end }}{{ end -}}
{{- if and $limit (gt $percent 0) (not $own) -}}
{{- $bytes := 0.0 -}}
{{- if kindIs "string" $limit -}}
{{- $quantity := "^([0-9]+(?:\\.[0-9]+)?)(|k|M|G|T|Ki|Mi|Gi|Ti)$" -}}
{{- if not (regexMatch $quantity $limit) -}}
{{- fail (printf "resources.limits.memory %q: expected a quantity such as 256Mi, 1Gi or 512M" $limit) -}}
{{- end -}}
{{- $units := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 -}}
{{- $bytes = mulf (float64 (regexReplaceAll $quantity $limit "${1}")) (get $units (regexReplaceAll $quantity $limit "${2}")) -}}
{{- else -}}
{{- $bytes = float64 $limit -}}
{{- end -}}
{{- $mib := int (floor (divf (mulf $bytes $percent) 104857600)) -}}
{{- if lt $mib 16 -}}
{{- fail (printf "resources.limits.memory %v: %d%% of it is %d MiB, too small a heap for corsgate" $limit $percent $mib) -}}
{{- end -}}
{{- $mib -}}
{{- end -}}
{{- end }}

{{/*
PromQL label matchers for this release's corsgate series, for the PrometheusRule:
prometheusRule.selector, or the release namespace and (edge mode) the admin Service, which
the Prometheus Operator puts on every scraped series as `namespace` and `service`.
*/}}
{{- define "corsgate.metricSelector" -}}
{{- if .Values.prometheusRule.selector -}}
{{- .Values.prometheusRule.selector -}}
{{- else if eq .Values.mode "edge" -}}
namespace="{{ .Release.Namespace }}", service="{{ printf "%s-admin" (include "corsgate.fullname" .) | trunc 63 | trimSuffix "-" }}"
{{- else -}}
namespace="{{ .Release.Namespace }}"
{{- end -}}
{{- end }}

{{/* The Secret and key that hold the admin token (adminAuth). */}}
{{- define "corsgate.adminTokenSecretName" -}}
{{- if .Values.adminAuth.existingSecret }}
{{- .Values.adminAuth.existingSecret }}
{{- else }}
{{- printf "%s-admin-token" (include "corsgate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "corsgate.adminTokenSecretKey" -}}
{{- if .Values.adminAuth.existingSecret }}
{{- .Values.adminAuth.existingSecretKey }}
{{- else -}}
token
{{- end }}
{{- end }}
