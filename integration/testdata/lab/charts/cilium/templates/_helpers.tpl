{{/* Common labels (the chart is always installed as release "cilium" in kube-system). */}}
{{- define "cilium.labels" -}}
app.kubernetes.io/part-of: cilium
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/*
Shared CA, generated once per render and stored in the root context (the same trick upstream uses,
so that every certificate is signed by the same CA). genCA is random: two renders differ.
Use as: {{- $_ := include "cilium.ca.setup" . -}}
*/}}
{{- define "cilium.ca.setup" -}}
{{- if not .commonCA -}}
{{- $ca := "" -}}
{{- if and .Values.tls.ca.cert .Values.tls.ca.key -}}
{{- $ca = buildCustomCert .Values.tls.ca.cert .Values.tls.ca.key -}}
{{- else -}}
{{- $ca = genCA "Cilium CA" (.Values.tls.ca.certValidityDuration | int) -}}
{{- end -}}
{{- $_ := set . "commonCA" $ca -}}
{{- end -}}
{{- end }}
