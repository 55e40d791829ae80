{{/*
Named templates another chart includes to add sidewatch to its own pod spec.
Each takes a context (see _helpers.tpl); from a parent chart with sidewatch
as a dependency:

  {{- $sw := dict "Values" .Values.sidewatch "Release" .Release "Capabilities" .Capabilities }}
  template:
    metadata:
      labels:
        {{- include "sidewatch.podLabels" $sw | nindent 8 }}
      annotations:
        {{- include "sidewatch.podAnnotations" $sw | nindent 8 }}
    spec:
      initContainers:
        {{- include "sidewatch.initContainers" $sw | nindent 8 }}
      containers:
        - name: app
          volumeMounts:
            {{- include "sidewatch.appVolumeMounts" $sw | nindent 12 }}
        {{- include "sidewatch.containers" $sw | nindent 8 }}
      volumes:
        {{- include "sidewatch.volumes" $sw | nindent 8 }}

The ConfigMap is rendered by the sidewatch (sub)chart itself.
*/}}

{{/* The sidecar as one list item, for initContainers (native) or containers (classic). */}}
{{- define "sidewatch.container" -}}
{{- $v := .Values }}
{{- $resolved := include "sidewatch.resolved" . | fromJson -}}
- name: {{ $v.sidecar.name }}
  image: {{ include "sidewatch.image" . }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if include "sidewatch.native" . }}
  restartPolicy: Always
  {{- end }}
  args: ["run", "--config", "{{ $v.sidecar.configPath }}/sidewatch.yaml"]
  ports:
    - name: sw-admin
      containerPort: {{ $v.sidecar.adminPort }}
      protocol: TCP
    {{- if $v.proxy.enabled }}
    - name: {{ $v.proxy.portName }}
      containerPort: {{ $v.proxy.listenPort }}
      protocol: TCP
    {{- end }}
  env:
    - name: SIDEWATCH_POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: SIDEWATCH_POD_NAMESPACE
      valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
    - name: SIDEWATCH_NODE_NAME
      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
    - name: SIDEWATCH_POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    - name: SIDEWATCH_CONTAINER_NAME
      value: {{ $v.app.containerName | quote }}
    - name: SIDEWATCH_APP_VERSION
      {{- if $v.app.version }}
      value: {{ $v.app.version | quote }}
      {{- else }}
      valueFrom: {fieldRef: {fieldPath: "metadata.labels['app.kubernetes.io/version']"}}
      {{- end }}
    - name: SIDEWATCH_APP_MEMORY_LIMIT
      valueFrom: {resourceFieldRef: {containerName: {{ $v.app.containerName }}, resource: limits.memory}}
    - name: SIDEWATCH_APP_CPU_LIMIT_MILLICORES
      valueFrom: {resourceFieldRef: {containerName: {{ $v.app.containerName }}, resource: limits.cpu, divisor: 1m}}
    {{- with $resolved.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with $v.sidecar.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $v.sidecar.livenessProbe }}
  livenessProbe:
    {{- include "sidewatch.probe" (dict "probe" . "Values" $v) | nindent 4 }}
  {{- end }}
  {{- with $v.sidecar.readinessProbe }}
  readinessProbe:
    {{- include "sidewatch.probe" (dict "probe" . "Values" $v) | nindent 4 }}
  {{- end }}
  resources:
    {{- toYaml $v.sidecar.resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.sidecar.securityContext | nindent 4 }}
  volumeMounts:
    - name: sidewatch-config
      mountPath: {{ $v.sidecar.configPath }}
      readOnly: true
    - name: sidewatch-state
      mountPath: {{ $v.state.mountPath }}
    {{- if $v.logs.enabled }}
    - name: sidewatch-logs
      mountPath: {{ $v.logs.mountPath }}
      readOnly: true
    {{- end }}
    {{- if $v.admin.tls.enabled }}
    - name: sidewatch-admin-tls
      mountPath: {{ $v.admin.tls.mountPath }}
      readOnly: true
    {{- end }}
    {{- if $v.admin.auth.tokenSecret }}
    - name: sidewatch-admin-token
      mountPath: {{ $v.admin.auth.mountPath }}
      readOnly: true
    {{- end }}
    {{- with $v.sidecar.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* A probe; an httpGet one uses HTTPS when the admin port serves TLS. */}}
{{- define "sidewatch.probe" -}}
{{- $probe := deepCopy .probe }}
{{- if and .Values.admin.tls.enabled $probe.httpGet }}
{{- $_ := set $probe.httpGet "scheme" "HTTPS" }}
{{- end }}
{{- toYaml $probe }}
{{- end }}

{{/* The sidecar item when native, else nothing: place under initContainers. */}}
{{- define "sidewatch.initContainers" -}}
{{- if include "sidewatch.native" . -}}
{{- include "sidewatch.container" . }}
{{- end }}
{{- end }}

{{/* The sidecar item when classic, else nothing: place under containers, after the app. */}}
{{- define "sidewatch.containers" -}}
{{- if not (include "sidewatch.native" .) -}}
{{- include "sidewatch.container" . }}
{{- end }}
{{- end }}

{{/* The pod volumes sidewatch needs: config, state and (when tailing) the shared log dir. */}}
{{- define "sidewatch.volumes" -}}
- name: sidewatch-config
  configMap:
    name: {{ include "sidewatch.configMapName" . }}
- name: sidewatch-state
  emptyDir:
    sizeLimit: {{ .Values.state.sizeLimit }}
{{- if .Values.logs.enabled }}
- name: sidewatch-logs
  emptyDir:
    sizeLimit: {{ .Values.logs.sizeLimit }}
{{- end }}
{{- if .Values.admin.tls.enabled }}
- name: sidewatch-admin-tls
  secret:
    secretName: {{ .Values.admin.tls.secretName }}
{{- end }}
{{- if .Values.admin.auth.tokenSecret }}
- name: sidewatch-admin-token
  secret:
    secretName: {{ .Values.admin.auth.tokenSecret }}
    items:
      - key: {{ .Values.admin.auth.tokenKey }}
        path: token
{{- end }}
{{- end }}

{{/* The app container's mount of the shared log dir (nothing when tailing is off). */}}
{{- define "sidewatch.appVolumeMounts" -}}
{{- if .Values.logs.enabled -}}
- name: sidewatch-logs
  mountPath: {{ .Values.logs.mountPath }}
{{- end }}
{{- end }}

{{/* Labels for the pod template: the monitors select pods by sidewatch.io/instance. */}}
{{- define "sidewatch.podLabels" -}}
sidewatch.io/instance: {{ include "sidewatch.fullname" . }}
{{- with .Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Annotations for the pod template: config checksum, and scrape annotations in annotations mode. */}}
{{- define "sidewatch.podAnnotations" -}}
checksum/sidewatch-config: {{ include "sidewatch.configYaml" . | sha256sum }}
{{- if eq .Values.monitoring.mode "annotations" }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.sidecar.adminPort | quote }}
prometheus.io/path: {{ .Values.monitoring.path | quote }}
{{- end }}
{{- end }}
