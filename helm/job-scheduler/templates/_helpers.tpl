{{/*
Expand the name of the chart.
*/}}
{{- define "job-scheduler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name: <release>-job-scheduler, or the release name if it
already holds the chart name. Trimmed to 63 characters (the DNS label limit of name fields).
*/}}
{{- define "job-scheduler.fullname" -}}
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

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "job-scheduler.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "job-scheduler.labels" -}}
helm.sh/chart: {{ include "job-scheduler.chart" . }}
{{ include "job-scheduler.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels of the scheduler pod. Only app.kubernetes.io/* keys: the radix-component and
radix-job-type keys belong to the job pods the scheduler creates, which the Service and the
NetworkPolicy must not select.
*/}}
{{- define "job-scheduler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "job-scheduler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The scheduler's image reference: the scheduler container runs it, and so does the init container
that puts a payload above 1 MiB together in a job's pod (SCHEDULER_IMAGE).
*/}}
{{- define "job-scheduler.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
The name of the service account the scheduler runs as, which the Role is bound to. An existing
one (serviceAccount.create=false) must be named: the namespace's "default" account is every pod's
that names none, and would get the scheduler's permissions with it.
*/}}
{{- define "job-scheduler.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "job-scheduler.fullname" .) .Values.serviceAccount.name }}
{{- else if or (not .Values.serviceAccount.name) (eq (toString .Values.serviceAccount.name) "default") }}
{{- fail "serviceAccount.name is required with serviceAccount.create=false, and not \"default\": the Role is bound to that account, and the default account is every pod's in the namespace that names none; name a ServiceAccount only the scheduler uses, or leave serviceAccount.create=true" }}
{{- else }}
{{- .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The ConfigMap holding radixconfig.yaml: the chart's own, or existingConfigMap.
*/}}
{{- define "job-scheduler.configMapName" -}}
{{- default (include "job-scheduler.fullname" .) .Values.existingConfigMap }}
{{- end }}

{{/*
The resolved settings as YAML (use with `include ... | fromYaml`): job, environment, app, port.
Guards the invariants the schema cannot express, so every template fails the same way:
radixconfig xor existingConfigMap; job and environment exist in the inline radixconfig;
the job has a schedulerPort, schedulerPort agrees with it, and the port is valid.
*/}}
{{- define "job-scheduler.settings" -}}
{{- $v := .Values }}
{{- if and $v.radixconfig $v.existingConfigMap }}
{{- fail "set only one of radixconfig (the radixconfig.yaml text) and existingConfigMap (a ConfigMap holding radixconfig.yaml), not both; to use existingConfigMap clear the default radixconfig with --set radixconfig=null" }}
{{- end }}
{{- if not (or $v.radixconfig $v.existingConfigMap) }}
{{- fail "set one of radixconfig (e.g. --set-file radixconfig=radixconfig.yaml) and existingConfigMap (the name of a ConfigMap holding radixconfig.yaml)" }}
{{- end }}
{{- $job := required "job is required: the spec.jobs[].name of the radixconfig to serve, e.g. --set job=compute" $v.job | toString }}
{{- $env := required "environment is required: the spec.environments[].name of the radixconfig to serve, e.g. --set environment=dev" $v.environment | toString }}
{{- $app := $v.app | default "" | toString }}
{{- $port := $v.schedulerPort }}
{{- if $v.radixconfig }}
{{- $cfg := fromYaml (toString $v.radixconfig) }}
{{- if hasKey $cfg "Error" }}
{{- fail (printf "radixconfig is not a YAML mapping (a RadixApplication): %s" $cfg.Error) }}
{{- end }}
{{- $meta := $cfg.metadata | default dict }}
{{- $spec := $cfg.spec | default dict }}
{{- if not (and (kindIs "map" $meta) (kindIs "map" $spec)) }}
{{- fail "radixconfig must have mappings metadata and spec (a RadixApplication)" }}
{{- end }}
{{- $jobNames := list }}
{{- $found := dict }}
{{- range ($spec.jobs | default list) }}
{{- if kindIs "map" . }}
{{- $jobNames = append $jobNames (toString .name) }}
{{- if eq (toString .name) $job }}
{{- $found = . }}
{{- end }}
{{- end }}
{{- end }}
{{- if not $found }}
{{- fail (printf "job %q is not in spec.jobs of the radixconfig (jobs: %s); set job to one of them" $job (join ", " $jobNames | default "none")) }}
{{- end }}
{{- $envNames := list }}
{{- range ($spec.environments | default list) }}
{{- if kindIs "map" . }}
{{- $envNames = append $envNames (toString .name) }}
{{- end }}
{{- end }}
{{- if not (has $env $envNames) }}
{{- fail (printf "environment %q is not in spec.environments of the radixconfig (environments: %s); set environment to one of them" $env (join ", " $envNames | default "none")) }}
{{- end }}
{{- $jobPort := $found.schedulerPort }}
{{- if not $jobPort }}
{{- fail (printf "job %q has no schedulerPort in the radixconfig; the scheduler reads its port from there, so add it" $job) }}
{{- end }}
{{- if and $port (ne (int $port) (int $jobPort)) }}
{{- fail (printf "schedulerPort %d disagrees with schedulerPort %d of job %q in the radixconfig; drop schedulerPort or make them equal" (int $port) (int $jobPort) $job) }}
{{- end }}
{{- $port = $jobPort }}
{{- $app = $app | default ($meta.name | default "" | toString) }}
{{- else if not $port }}
{{- fail "schedulerPort is required with existingConfigMap, since the chart cannot read that ConfigMap: --set schedulerPort=<the job's schedulerPort>" }}
{{- end }}
{{- if or (lt (int $port) 1) (gt (int $port) 65535) }}
{{- fail (printf "schedulerPort %v of job %q is not a port (1..65535)" $port $job) }}
{{- end }}
job: {{ $job | quote }}
environment: {{ $env | quote }}
app: {{ $app | quote }}
port: {{ int $port }}
{{- end }}
