{{/* Names, labels and shared pieces of the vlaforge chart. */}}

{{- define "vlaforge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vlaforge.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "vlaforge.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "vlaforge.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vlaforge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vlaforge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "vlaforge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "vlaforge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vlaforge
{{- end -}}

{{- define "vlaforge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (printf "%s-runner" (include "vlaforge.fullname" .)) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The S3 credentials Secret: the name compiled into the pipeline pods' environment. */}}
{{- define "vlaforge.s3SecretName" -}}
{{- .Values.clusterProfile.storage.secret_name -}}
{{- end -}}

{{- define "vlaforge.envConfigMapName" -}}
{{- printf "%s-env" (include "vlaforge.fullname" .) -}}
{{- end -}}

{{- define "vlaforge.pipelineRoot" -}}
{{- $prefix := trimAll "/" .Values.objectStore.prefix -}}
{{- if $prefix -}}
{{- printf "s3://%s/%s" .Values.objectStore.bucket $prefix -}}
{{- else -}}
{{- printf "s3://%s" .Values.objectStore.bucket -}}
{{- end -}}
{{- end -}}

{{- define "vlaforge.pushgatewayUrl" -}}
{{- printf "http://%s-pushgateway.%s.svc:%v" (include "vlaforge.fullname" .) .Release.Namespace .Values.monitoring.pushgateway.port -}}
{{- end -}}

{{- define "vlaforge.image" -}}
{{- printf "%s/%s:%s" (trimSuffix "/" .registry) .repository .tag -}}
{{- end -}}

{{- define "vlaforge.kfpImage" -}}
{{- include "vlaforge.image" (dict "registry" .Values.image.registry "repository" .Values.image.repository "tag" (default .Chart.AppVersion .Values.image.tag)) -}}
{{- end -}}

{{/*
The packaged pipelines: a list of dicts {file, name, spec (parsed PipelineSpec), specText (the
PipelineSpec document exactly as compiled), platform (parsed platform document or empty)}, one per
pipelines/*.yaml. Returned as JSON (include can only return text).
*/}}
{{- define "vlaforge.pipelines" -}}
{{- $out := list -}}
{{- range $path, $_ := .Files.Glob "pipelines/*.yaml" -}}
{{- $text := $.Files.Get $path -}}
{{- $docs := list -}}
{{- range regexSplit `(?m)^---[ \t]*$` $text -1 -}}
{{- if regexMatch `(?m)^[^#\s]` . -}}
{{- $docs = append $docs . -}}
{{- end -}}
{{- end -}}
{{- if not $docs -}}
{{- fail (printf "%s: empty file, expected a compiled KFP pipeline" $path) -}}
{{- end -}}
{{- $specText := trim (index $docs 0) -}}
{{- $spec := fromYaml $specText -}}
{{- if hasKey $spec "Error" -}}
{{- fail (printf "%s: not a YAML pipeline spec: %s" $path $spec.Error) -}}
{{- end -}}
{{- $name := dig "pipelineInfo" "name" "" $spec -}}
{{- if not $name -}}
{{- fail (printf "%s: no pipelineInfo.name: not a compiled KFP pipeline (IR YAML from kfp.compiler)" $path) -}}
{{- end -}}
{{- $platform := dict -}}
{{- if gt (len $docs) 1 -}}
{{- $platform = fromYaml (index $docs 1) -}}
{{- end -}}
{{- $out = append $out (dict "file" (base $path) "name" $name "spec" $spec "specText" $specText "platform" $platform) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Version name of a pipeline (argument: dict ctx, name) that is a valid Kubernetes name. */}}
{{- define "vlaforge.versionName" -}}
{{- $version := default (printf "%s-v%s" .name .ctx.Chart.AppVersion) .ctx.Values.registration.versionName -}}
{{- $version | lower | replace "." "-" | replace "+" "-" | replace "_" "-" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fails unless the values' clusterProfile is the profile the packaged pipelines were compiled with
(pipelines/profile.json, written by `make chart`): the profile is compiled into the pipeline specs.
Also checks the values that must agree with the profile.
*/}}
{{- define "vlaforge.checkProfile" -}}
{{- $v := .Values -}}
{{- $compiled := .Files.Get "pipelines/profile.json" -}}
{{- if and $compiled (ne (toJson (fromJson $compiled)) (toJson $v.clusterProfile)) -}}
{{- fail "clusterProfile differs from the cluster profile the packaged pipelines were compiled with (pipelines/profile.json in the chart): the profile is compiled into the pipeline specs, so rebuild the chart with `make chart VALUES=<your values file>` and install it with the same values" -}}
{{- end -}}
{{- if not $v.multiNode.enabled -}}
{{- range $name, $stage := $v.clusterProfile.stages -}}
{{- $class := get $v.clusterProfile.classes (toString (get $stage "class")) | default dict -}}
{{- $nodes := get $stage "num_nodes" | default (get $class "num_nodes") | default 1 | int -}}
{{- if gt $nodes 1 -}}
{{- fail (printf "clusterProfile.stages.%s runs on %d nodes (a Kubeflow Trainer TrainJob): set multiNode.enabled=true so the pipeline pods may create TrainJobs" $name $nodes) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- with $v.objectStore.existingSecret -}}
{{- if ne . $v.clusterProfile.storage.secret_name -}}
{{- fail (printf "objectStore.existingSecret is %q but the pipeline pods read their S3 credentials from clusterProfile.storage.secret_name %q: use the same name" . $v.clusterProfile.storage.secret_name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
platformSpec of a PipelineVersion (argument: dict ctx, pipeline): the compiled platform document;
with the Pushgateway on, every container executor also gets the <fullname>-env ConfigMap
(PUSHGATEWAY_URL) as environment.
*/}}
{{- define "vlaforge.platformSpec" -}}
{{- $ctx := .ctx -}}
{{- $platform := deepCopy .pipeline.platform -}}
{{- if $ctx.Values.monitoring.pushgateway.enabled -}}
{{- $platforms := get $platform "platforms" | default dict -}}
{{- $k8s := get $platforms "kubernetes" | default dict -}}
{{- $deployment := get $k8s "deploymentSpec" | default dict -}}
{{- $executors := get $deployment "executors" | default dict -}}
{{- $envMap := include "vlaforge.envConfigMapName" $ctx -}}
{{- range $exec, $def := (dig "deploymentSpec" "executors" dict .pipeline.spec) -}}
{{- if hasKey $def "container" -}}
{{- $cfg := get $executors $exec | default dict -}}
{{- $entry := dict "configMapName" $envMap "keyToEnv" (list (dict "configMapKey" "PUSHGATEWAY_URL" "envVar" "PUSHGATEWAY_URL")) "optional" true -}}
{{- $_ := set $cfg "configMapAsEnv" (append (get $cfg "configMapAsEnv" | default list) $entry) -}}
{{- $_ := set $executors $exec $cfg -}}
{{- end -}}
{{- end -}}
{{- $_ := set $deployment "executors" $executors -}}
{{- $_ := set $k8s "deploymentSpec" $deployment -}}
{{- $_ := set $platforms "kubernetes" $k8s -}}
{{- $_ := set $platform "platforms" $platforms -}}
{{- end -}}
{{- toJson $platform -}}
{{- end -}}

{{/* Pod-level securityContext for the chart's own Pods. */}}
{{- define "vlaforge.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{/* Volumes and mounts that give a Pod the multi-user KFP token, when enabled. */}}
{{- define "vlaforge.kfpTokenVolume" -}}
{{- if .Values.registration.multiUser }}
- name: kfp-token
  projected:
    sources:
      - serviceAccountToken:
          path: token
          audience: pipelines.kubeflow.org
          expirationSeconds: 3600
{{- end }}
{{- end -}}

{{- define "vlaforge.kfpTokenMount" -}}
{{- if .Values.registration.multiUser }}
- name: kfp-token
  mountPath: /var/run/secrets/kubeflow/pipelines
  readOnly: true
{{- end }}
{{- end -}}

{{/* The registration plan (JSON) read by files/register_pipelines.py. */}}
{{- define "vlaforge.registrationPlan" -}}
{{- $plan := list -}}
{{- range (include "vlaforge.pipelines" . | fromJsonArray) -}}
{{- $plan = append $plan (dict "file" .file "pipeline" .name "version" (include "vlaforge.versionName" (dict "ctx" $ "name" .name)) "description" (dig "pipelineInfo" "description" "" .spec)) -}}
{{- end -}}
{{- toPrettyJson $plan -}}
{{- end -}}

{{/* Container spec shared by the registration Job and the helm test Pod (argument: dict ctx, action). */}}
{{- define "vlaforge.registrarContainer" -}}
{{- $v := .ctx.Values -}}
- name: {{ .action }}
  image: {{ include "vlaforge.kfpImage" .ctx }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  command: [python3, /opt/vlaforge/register_pipelines.py, {{ .action }}]
  args:
    - --host={{ $v.registration.apiUrl }}
    - --plan=/opt/vlaforge/plan.json
    - --pipelines=/opt/vlaforge/pipelines
    {{- if $v.registration.multiUser }}
    - --namespace={{ .ctx.Release.Namespace }}
    {{- end }}
  env:
    - name: HOME
      value: /tmp
  resources:
    {{- toYaml $v.registration.hook.resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.containerSecurityContext | nindent 4 }}
  volumeMounts:
    - name: registrar
      mountPath: /opt/vlaforge
      readOnly: true
    - name: tmp
      mountPath: /tmp
    {{- with include "vlaforge.kfpTokenMount" .ctx | trim }}{{ . | nindent 4 }}{{ end }}
{{- end -}}
