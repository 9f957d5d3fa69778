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
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
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
The webhook CA and serving certificate (without cert-manager), made once per render and shared by
the Secret, the webhook configurations and the Deployment's checksum annotation. Returns YAML:
{ca, crt, key, bundle, notAfter}.

The live Secret (`lookup`) is re-used while it names this Service and its certificate is valid for
more than webhook.renewBeforeDays: a no-op `helm upgrade` changes nothing and rolls no pod. Then a
new CA and certificate are generated; bundle also trusts the previous CA, so webhook calls keep
working while pods roll onto the new certificate. `helm template` (no cluster) always generates.
*/}}
{{- define "studio-operator.webhookCerts" -}}
{{- if not (hasKey .Values "__webhookCerts") -}}
{{- $host := include "studio-operator.webhookHost" . -}}
{{- $svc := include "studio-operator.webhookService" . -}}
{{- $days := int .Values.webhook.validityDays -}}
{{- $previous := lookup "v1" "Secret" .Release.Namespace (include "studio-operator.webhookSecret" .) -}}
{{- $prevData := dict -}}
{{- $prevAnn := dict -}}
{{- if $previous -}}
{{- $prevData = $previous.data | default dict -}}
{{- $prevAnn = $previous.metadata.annotations | default dict -}}
{{- end -}}
{{- $reuse := false -}}
{{- $notAfter := index $prevAnn "studios.dev/not-after" | default "" -}}
{{- if and (index $prevData "tls.crt") (index $prevData "tls.key") (index $prevData "ca.crt") $notAfter (eq (index $prevAnn "studios.dev/host" | default "") $host) -}}
{{- $renewAt := (toDate "2006-01-02T15:04:05Z07:00" $notAfter | unixEpoch) | int64 -}}
{{- $renewBefore := mul (int .Values.webhook.renewBeforeDays) 86400 | int64 -}}
{{- if gt (sub $renewAt $renewBefore) (now | unixEpoch | int64) -}}
{{- $reuse = true -}}
{{- end -}}
{{- end -}}
{{- if $reuse -}}
{{- $ca := index $prevData "ca.crt" | b64dec -}}
{{- $_ := set .Values "__webhookCerts" (dict "ca" $ca "crt" (index $prevData "tls.crt" | b64dec) "key" (index $prevData "tls.key" | b64dec) "bundle" $ca "notAfter" $notAfter) -}}
{{- else -}}
{{- $ca := genCA "studio-operator webhook CA" $days -}}
{{- $sans := list $host $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.cluster.local" $host) -}}
{{- $cert := genSignedCert $host nil $sans $days $ca -}}
{{- $bundle := $ca.Cert -}}
{{- if index $prevData "ca.crt" -}}
{{- $old := index $prevData "ca.crt" | b64dec -}}
{{- if ne $old $ca.Cert -}}
{{- $bundle = printf "%s\n%s" (trim $ca.Cert) (trim $old) -}}
{{- end -}}
{{- end -}}
{{- $until := now | dateModify (printf "+%dh" (mul $days 24)) | date "2006-01-02T15:04:05Z07:00" -}}
{{- $_ := set .Values "__webhookCerts" (dict "ca" $ca.Cert "crt" $cert.Cert "key" $cert.Key "bundle" $bundle "notAfter" $until) -}}
{{- end -}}
{{- end -}}
{{- toYaml (index .Values "__webhookCerts") -}}
{{- end -}}
