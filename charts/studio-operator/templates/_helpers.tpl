{{/* Names and labels. */}}
{{- define "studio-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "studio-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "studio-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "studio-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "studio-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "studio-operator.labels" -}}
helm.sh/chart: {{ include "studio-operator.chart" . }}
{{ include "studio-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: studio-operator
{{- end -}}

{{- define "studio-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "studio-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "studio-operator.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "studio-operator.webhookService" -}}
{{- printf "%s-webhook" (include "studio-operator.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "studio-operator.webhookHost" -}}
{{- printf "%s.%s.svc" (include "studio-operator.webhookService" .) .Release.Namespace -}}
{{- end -}}

{{- define "studio-operator.webhookSecret" -}}
{{- printf "%s-webhook-tls" (include "studio-operator.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The generated webhook CA and serving certificate (without cert-manager), made once per render and
shared by the Secret, the webhook configurations and the Deployment's checksum annotation.
Returns YAML: {ca, crt, key, bundle}; bundle also trusts the previous CA (from the live Secret),
so webhook calls keep working while pods roll to the new certificate.
*/}}
{{- define "studio-operator.webhookCerts" -}}
{{- if not (hasKey .Values "__webhookCerts") -}}
{{- $host := include "studio-operator.webhookHost" . -}}
{{- $svc := include "studio-operator.webhookService" . -}}
{{- $days := int .Values.webhook.validityDays -}}
{{- $ca := genCA "studio-operator webhook CA" $days -}}
{{- $sans := list $host $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.cluster.local" $host) -}}
{{- $cert := genSignedCert $host nil $sans $days $ca -}}
{{- $bundle := $ca.Cert -}}
{{- $previous := lookup "v1" "Secret" .Release.Namespace (include "studio-operator.webhookSecret" .) -}}
{{- if and $previous $previous.data (index $previous.data "ca.crt") -}}
{{- $old := index $previous.data "ca.crt" | b64dec -}}
{{- if ne $old $ca.Cert -}}
{{- $bundle = printf "%s\n%s" (trim $ca.Cert) (trim $old) -}}
{{- end -}}
{{- end -}}
{{- $_ := set .Values "__webhookCerts" (dict "ca" $ca.Cert "crt" $cert.Cert "key" $cert.Key "bundle" $bundle) -}}
{{- end -}}
{{- toYaml (index .Values "__webhookCerts") -}}
{{- end -}}
