{{/*
The corsgate container, one definition for both modes: the edge Deployment includes it,
and in sidecar mode another chart puts it into its own pod template:

    containers:
      {{- include "corsgate.sidecarContainer" .Subcharts.corsgate | nindent 8 }}
      - name: app
        ...
    volumes:
      {{- include "corsgate.configVolume" .Subcharts.corsgate | nindent 8 }}

The argument is the corsgate chart's own context (`.` inside this chart,
`.Subcharts.corsgate` from a parent chart that depends on it), so names and values are
the ones the corsgate subchart rendered its ConfigMap with. It renders a YAML list item.
Port names `http` (`https` with TLS) and `admin` must be unique in the pod: name the app's own ports otherwise.
*/}}
{{- define "corsgate.sidecarContainer" -}}
- name: corsgate
  image: {{ include "corsgate.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["start", "--config", "/etc/corsgate/config.yaml"]
  {{- $heapMiB := include "corsgate.maxOldSpaceSizeMiB" . }}
  {{- if or (include "corsgate.redisUrlFromSecret" .) .Values.extraEnv $heapMiB }}
  env:
    {{- if $heapMiB }}
    - name: NODE_OPTIONS
      value: {{ printf "--max-old-space-size=%s" $heapMiB | quote }}
    {{- end }}
    {{- if include "corsgate.redisUrlFromSecret" . }}
    - name: CORSGATE_REDIS_URL
      valueFrom:
        secretKeyRef:
          name: {{ include "corsgate.redisSecretName" . }}
          key: {{ include "corsgate.redisSecretKey" . }}
    {{- end }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  {{- with .Values.extraEnvFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    - name: {{ include "corsgate.publicPortName" . }}
      containerPort: {{ .Values.containerPorts.http }}
      protocol: TCP
    - name: admin
      containerPort: {{ .Values.containerPorts.admin }}
      protocol: TCP
  {{- with .Values.startupProbe }}
  {{- if .enabled }}
  startupProbe:
    httpGet:
      path: /healthz
      port: admin
    {{- toYaml (omit . "enabled") | nindent 4 }}
  {{- end }}
  {{- end }}
  {{- with .Values.livenessProbe }}
  {{- if .enabled }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: admin
    {{- toYaml (omit . "enabled") | nindent 4 }}
  {{- end }}
  {{- end }}
  {{- with .Values.readinessProbe }}
  {{- if .enabled }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: admin
    {{- toYaml (omit . "enabled") | nindent 4 }}
  {{- end }}
  {{- end }}
  {{- with .Values.lifecycle }}
  lifecycle:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: corsgate-config
      mountPath: /etc/corsgate
      readOnly: true
    - name: corsgate-tmp
      mountPath: /tmp
    {{- if .Values.adminAuth.enabled }}
    - name: corsgate-admin-token
      mountPath: /var/run/corsgate/admin-token
      readOnly: true
    {{- end }}
    {{- if include "corsgate.tlsEnabled" . }}
    # The whole Secret as a directory: a subPath mount would never see a renewal.
    - name: corsgate-tls
      mountPath: /etc/corsgate-tls
      readOnly: true
    {{- end }}
    {{- with .Values.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/*
The volumes the corsgate container mounts: its ConfigMap at /etc/corsgate, a small
writable /tmp (the root filesystem is read-only), with adminAuth the admin token's Secret,
and with TLS the certificate Secret at /etc/corsgate-tls. A YAML list, for a pod's `volumes:`.
*/}}
{{- define "corsgate.configVolume" -}}
- name: corsgate-config
  configMap:
    name: {{ include "corsgate.fullname" . }}
    items:
      - key: config.yaml
        path: config.yaml
- name: corsgate-tmp
  emptyDir:
    sizeLimit: 16Mi
{{- if .Values.adminAuth.enabled }}
- name: corsgate-admin-token
  secret:
    secretName: {{ include "corsgate.adminTokenSecretName" . }}
    items:
      - key: {{ include "corsgate.adminTokenSecretKey" . }}
        path: token
{{- end }}
{{- if include "corsgate.tlsEnabled" . }}
- name: corsgate-tls
  secret:
    secretName: {{ .Values.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end }}
