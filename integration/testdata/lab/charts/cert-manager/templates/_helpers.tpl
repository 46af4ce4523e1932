{{- define "cert-manager.labels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* CRD metadata shared by all CRD templates. */}}
{{- define "cert-manager.crd-labels" -}}
app: cert-manager
app.kubernetes.io/name: cert-manager
{{ include "cert-manager.labels" . }}
{{- end }}


{{/* Renders one Deployment: (list $ "component-name" .Values.section "image-args...") */}}
{{- define "cert-manager.deployment" -}}
{{- $ := index . 0 -}}
{{- $name := index . 1 -}}
{{- $component := index . 2 -}}
{{- $cfg := index . 3 -}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $.Release.Namespace }}
  labels:
    app: {{ $name }}
    app.kubernetes.io/name: {{ $name }}
    app.kubernetes.io/component: {{ $component }}
    {{- include "cert-manager.labels" $ | nindent 4 }}
spec:
  replicas: {{ $cfg.replicaCount }}
  selector:
    matchLabels:
      app.kubernetes.io/name: {{ $name }}
      app.kubernetes.io/instance: {{ $.Release.Name }}
      app.kubernetes.io/component: {{ $component }}
  template:
    metadata:
      labels:
        app: {{ $name }}
        app.kubernetes.io/name: {{ $name }}
        app.kubernetes.io/instance: {{ $.Release.Name }}
        app.kubernetes.io/component: {{ $component }}
    spec:
      serviceAccountName: {{ $name }}
      enableServiceLinks: false
      securityContext:
        runAsNonRoot: true
        seccompProfile:
          type: RuntimeDefault
      tolerations:
        {{- toYaml $cfg.tolerations | nindent 8 }}
      containers:
        - name: {{ $component }}
          image: "{{ $cfg.image.repository }}:{{ $cfg.image.tag }}"
          imagePullPolicy: IfNotPresent
          args:
            - --v=2
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]
          resources:
            {{- toYaml $cfg.resources | nindent 12 }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $name }}
  namespace: {{ $.Release.Namespace }}
  labels:
    app.kubernetes.io/name: {{ $name }}
    app.kubernetes.io/component: {{ $component }}
    {{- include "cert-manager.labels" $ | nindent 4 }}
{{- end }}
