{{/*
Helpers. Every template here takes a context with .Values (this chart's
values), .Release and optionally .Capabilities: the chart's own root context,
or, from another chart, (dict "Values" .Values.sidewatch "Release" .Release
"Capabilities" .Capabilities).
*/}}

{{/* The chart name (nameOverride wins). */}}
{{- define "sidewatch.name" -}}
{{- default "sidewatch" .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full resource name: fullnameOverride, or release name + "-sidewatch". */}}
{{- define "sidewatch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "sidewatch.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Selector labels of the sidewatch resources themselves. */}}
{{- define "sidewatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sidewatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Common labels. */}}
{{- define "sidewatch.labels" -}}
{{ include "sidewatch.selectorLabels" . }}
app.kubernetes.io/part-of: sidewatch
app.kubernetes.io/managed-by: {{ .Release.Service | default "Helm" }}
{{- with .Chart }}
helm.sh/chart: {{ printf "%s-%s" .Name .Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .AppVersion | quote }}
{{- end }}
{{- end }}

{{/* Whether the sidecar is native ("true") or classic (""). */}}
{{- define "sidewatch.native" -}}
{{- if .Values.sidecar.native }}
{{- with .Capabilities }}
{{- if semverCompare "<1.29.0-0" .KubeVersion.Version }}
{{- fail (printf "sidecar.native needs Kubernetes >= 1.29 (this is %s): set sidecar.native=false" .KubeVersion.Version) }}
{{- end }}
{{- end }}
{{- true }}
{{- end }}
{{- end }}

{{/* The image reference. */}}
{{- define "sidewatch.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default (dig "AppVersion" "" (.Chart | default dict)) | default "latest") }}
{{- end }}

{{/* The ConfigMap holding sidewatch.yaml. */}}
{{- define "sidewatch.configMapName" -}}
{{- include "sidewatch.fullname" . }}-config
{{- end }}

{{/* The app's port for the proxy (proxy.appPort, else app.port). */}}
{{- define "sidewatch.appPort" -}}
{{- $port := .Values.proxy.appPort | default .Values.app.port }}
{{- if and .Values.proxy.enabled (not $port) }}
{{- fail "proxy.enabled needs proxy.appPort or app.port (the app's port on loopback)" }}
{{- end }}
{{- $port }}
{{- end }}

{{/*
Replaces every { secretKeyRef: {name, key} } in .node with { env: NAME } and
appends the env var that reads it from the Secret to .acc.env. NAME is derived
from the key path, e.g. SIDEWATCH_SECRET_POSTGRES_SERVERS_0_DSN.
*/}}
{{- define "sidewatch.secretWalk" -}}
{{- $node := .node }}
{{- $acc := .acc }}
{{- $path := .path }}
{{- if kindIs "map" $node }}
{{- range $key, $value := $node }}
{{- $sub := printf "%s_%s" $path $key | upper | replace "-" "_" | replace "." "_" }}
{{- if and (kindIs "map" $value) (hasKey $value "secretKeyRef") }}
{{- $name := printf "SIDEWATCH_SECRET%s" $sub }}
{{- $_ := set $acc "env" (append $acc.env (dict "name" $name "valueFrom" (dict "secretKeyRef" $value.secretKeyRef))) }}
{{- $_ := set $node $key (dict "env" $name) }}
{{- else }}
{{- include "sidewatch.secretWalk" (dict "node" $value "path" $sub "acc" $acc) }}
{{- end }}
{{- end }}
{{- else if kindIs "slice" $node }}
{{- range $i, $value := $node }}
{{- include "sidewatch.secretWalk" (dict "node" $value "path" (printf "%s_%d" $path $i) "acc" $acc) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
sidewatch's resolved config and the secret env vars it reads, as JSON
{"config": {...}, "env": [...]}: settings the chart derives (admin listen,
state dir, log tailing, proxy, app address) overlaid by .Values.config.
*/}}
{{- define "sidewatch.resolved" -}}
{{- $v := .Values }}
{{- $derived := dict "admin" (dict "listen" (printf "0.0.0.0:%d" (int $v.sidecar.adminPort))) "logs" (dict "state_dir" $v.state.mountPath) }}
{{- if $v.admin.tls.enabled }}
{{- $_ := set $derived.admin "tls" (dict "cert_file" (printf "%s/tls.crt" $v.admin.tls.mountPath) "key_file" (printf "%s/tls.key" $v.admin.tls.mountPath)) }}
{{- end }}
{{- if $v.admin.auth.tokenSecret }}
{{- $_ := set $derived.admin "auth" (dict "token_file" (printf "%s/token" $v.admin.auth.mountPath)) }}
{{- end }}
{{- if $v.app.port }}
{{- $_ := set $derived "shutdown" (dict "app_addr" (printf "127.0.0.1:%d" (int $v.app.port))) }}
{{- end }}
{{- if $v.logs.enabled }}
{{- $include := $v.logs.include | default (list (printf "%s/*.log" $v.logs.mountPath)) }}
{{- $_ := set $derived.logs "sources" (list (dict "name" "app" "include" $include)) }}
{{- $_ := set $derived.logs "sinks" (list (dict "name" "stdout" "type" "stdout")) }}
{{- end }}
{{- if $v.proxy.enabled }}
{{- $_ := set $derived "proxy" (dict "listen" (printf "0.0.0.0:%d" (int $v.proxy.listenPort)) "upstream" (printf "127.0.0.1:%d" (int (include "sidewatch.appPort" .)))) }}
{{- end }}
{{- $config := mergeOverwrite $derived (deepCopy ($v.config | default dict)) }}
{{- $acc := dict "env" list }}
{{- include "sidewatch.secretWalk" (dict "node" $config "path" "" "acc" $acc) }}
{{- dict "config" $config "env" $acc.env | toJson }}
{{- end }}

{{/* The config file's text (YAML; sidewatch loads it by extension). */}}
{{- define "sidewatch.configYaml" -}}
{{- (include "sidewatch.resolved" . | fromJson).config | toYaml }}
{{- end }}

{{/* A PodMonitor/ServiceMonitor endpoint's scheme, TLS and bearer-token settings. */}}
{{- define "sidewatch.monitorSecurity" -}}
{{- $a := .Values.admin }}
{{- if $a.tls.enabled }}
scheme: https
tlsConfig:
  {{- if $a.tls.verify }}
  ca:
    secret:
      name: {{ $a.tls.secretName }}
      key: ca.crt
  {{- with $a.tls.serverName }}
  serverName: {{ . }}
  {{- end }}
  {{- else }}
  insecureSkipVerify: true
  {{- end }}
{{- end }}
{{- if $a.auth.tokenSecret }}
authorization:
  type: Bearer
  credentials:
    name: {{ $a.auth.tokenSecret }}
    key: {{ $a.auth.tokenKey }}
{{- end }}
{{- end }}
