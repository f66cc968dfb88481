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

{{- define "vlaforge.s3SecretName" -}}
{{- default (printf "%s-s3" (include "vlaforge.fullname" .)) .Values.objectStore.credentials.existingSecret -}}
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
{{- range regexSplit "(?m)^---[ \t]*$" $text -1 -}}
{{- if regexMatch "(?m)^[^#\s]" . -}}
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

{{/* Stage name of a KFP executor label: exec-llm-pretrain-2 -> llm_pretrain. */}}
{{- define "vlaforge.executorStage" -}}
{{- . | trimPrefix "exec-" | regexReplaceAll "-[0-9]+$" "" | replace "-" "_" -}}
{{- end -}}

{{/* Cluster profile of one stage: the defaults overlaid with the stage's own settings. */}}
{{- define "vlaforge.stageProfile" -}}
{{- $stage := get .ctx.Values.clusterProfile.stages .stage | default dict -}}
{{- toJson (merge (deepCopy $stage) (deepCopy .ctx.Values.clusterProfile.defaults)) -}}
{{- end -}}

{{/*
Fails when the accelerator the values give a stage differs from what the pipeline spec was compiled
with (argument: dict ctx, pipeline). Accelerators live in the pipeline spec, which the chart does not
rewrite.
*/}}
{{- define "vlaforge.checkAccelerators" -}}
{{- $pipeline := .pipeline -}}
{{- range $exec, $def := (dig "deploymentSpec" "executors" dict $pipeline.spec) -}}
{{- if hasKey $def "container" -}}
{{- $stage := include "vlaforge.executorStage" $exec -}}
{{- $profile := include "vlaforge.stageProfile" (dict "ctx" $.ctx "stage" $stage) | fromJson -}}
{{- if hasKey $profile "accelerator" -}}
{{- $want := $profile.accelerator -}}
{{- $acc := dig "container" "resources" "accelerator" dict $def -}}
{{- $type := default (get $acc "type") (get $acc "resourceType") | default "" -}}
{{- $count := default (get $acc "count") (get $acc "resourceCount") | default "0" | int -}}
{{- $wantType := ternary $want.type "" (gt (int $want.count) 0) -}}
{{- if or (ne (int $want.count) $count) (ne $wantType (ternary $type "" (gt $count 0))) -}}
{{- fail (printf "clusterProfile.stages.%s.accelerator is %s x %d but pipeline %s (%s, executor %s) was compiled with %s x %d: accelerators are compiled into the pipeline spec; rebuild the chart with `make chart VALUES=<your values file>` or set the values to match" $stage (default "none" $want.type) (int $want.count) $pipeline.name $pipeline.file $exec (default "none" $type) $count) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
platformSpec of a PipelineVersion (argument: dict ctx, pipeline): the compiled platform document with
the install-time cluster profile written into every container executor's Kubernetes config.
*/}}
{{- define "vlaforge.platformSpec" -}}
{{- $ctx := .ctx -}}
{{- $v := $ctx.Values -}}
{{- $platform := deepCopy .pipeline.platform -}}
{{- $platforms := get $platform "platforms" | default dict -}}
{{- $k8s := get $platforms "kubernetes" | default dict -}}
{{- $deployment := get $k8s "deploymentSpec" | default dict -}}
{{- $executors := get $deployment "executors" | default dict -}}
{{- range $exec, $def := (dig "deploymentSpec" "executors" dict .pipeline.spec) -}}
{{- if hasKey $def "container" -}}
{{- $p := include "vlaforge.stageProfile" (dict "ctx" $ctx "stage" (include "vlaforge.executorStage" $exec)) | fromJson -}}
{{- $cfg := get $executors $exec | default dict -}}
{{- with $p.nodeSelector -}}
{{- $_ := set $cfg "nodeSelector" (dict "labels" .) -}}
{{- end -}}
{{- with $p.tolerations -}}
{{- $_ := set $cfg "tolerations" . -}}
{{- end -}}
{{- with $p.shmSize -}}
{{- $mounts := list -}}
{{- range (get $cfg "emptyDirMounts" | default list) -}}
{{- if ne .mountPath "/dev/shm" -}}
{{- $mounts = append $mounts . -}}
{{- end -}}
{{- end -}}
{{- $_ := set $cfg "emptyDirMounts" (append $mounts (dict "volumeName" "dshm" "mountPath" "/dev/shm" "medium" "Memory" "sizeLimit" .)) -}}
{{- end -}}
{{- with $p.timeoutSeconds -}}
{{- $_ := set $cfg "activeDeadlineSeconds" (toString .) -}}
{{- end -}}
{{- $sc := $v.podSecurityContext -}}
{{- $security := dict -}}
{{- if hasKey $sc "runAsNonRoot" -}}{{- $_ := set $security "runAsNonRoot" $sc.runAsNonRoot -}}{{- end -}}
{{- if hasKey $sc "runAsUser" -}}{{- $_ := set $security "runAsUser" (toString $sc.runAsUser) -}}{{- end -}}
{{- if hasKey $sc "runAsGroup" -}}{{- $_ := set $security "runAsGroup" (toString $sc.runAsGroup) -}}{{- end -}}
{{- if $security -}}
{{- $_ := set $cfg "securityContext" $security -}}
{{- end -}}
{{- if $v.imagePullSecrets -}}
{{- $pulls := list -}}
{{- range $v.imagePullSecrets -}}
{{- $pulls = append $pulls (dict "secretName" .name) -}}
{{- end -}}
{{- $_ := set $cfg "imagePullSecret" $pulls -}}
{{- end -}}
{{- if $v.pipelinePods.injectEnv -}}
{{- $secretName := include "vlaforge.s3SecretName" $ctx -}}
{{- $secrets := list -}}
{{- range (get $cfg "secretAsEnv" | default list) -}}
{{- if ne .secretName $secretName -}}
{{- $secrets = append $secrets . -}}
{{- end -}}
{{- end -}}
{{- $keys := list (dict "secretKey" $v.objectStore.credentials.accessKeyKey "envVar" "AWS_ACCESS_KEY_ID") (dict "secretKey" $v.objectStore.credentials.secretKeyKey "envVar" "AWS_SECRET_ACCESS_KEY") -}}
{{- $_ := set $cfg "secretAsEnv" (append $secrets (dict "secretName" $secretName "keyToEnv" $keys)) -}}
{{- $envMap := include "vlaforge.envConfigMapName" $ctx -}}
{{- $maps := list -}}
{{- range (get $cfg "configMapAsEnv" | default list) -}}
{{- if ne .configMapName $envMap -}}
{{- $maps = append $maps . -}}
{{- end -}}
{{- end -}}
{{- $envKeys := list -}}
{{- range (include "vlaforge.podEnv" $ctx | fromJson | keys | sortAlpha) -}}
{{- $envKeys = append $envKeys (dict "configMapKey" . "envVar" .) -}}
{{- end -}}
{{- $_ := set $cfg "configMapAsEnv" (append $maps (dict "configMapName" $envMap "keyToEnv" $envKeys)) -}}
{{- end -}}
{{- $_ := set $executors $exec $cfg -}}
{{- end -}}
{{- end -}}
{{- $_ := set $deployment "executors" $executors -}}
{{- $_ := set $k8s "deploymentSpec" $deployment -}}
{{- $_ := set $platforms "kubernetes" $k8s -}}
{{- $_ := set $platform "platforms" $platforms -}}
{{- toJson $platform -}}
{{- end -}}

{{/* Environment the <fullname>-env ConfigMap gives every pipeline pod (JSON object). */}}
{{- define "vlaforge.podEnv" -}}
{{- $os := .Values.objectStore -}}
{{- $env := dict "AWS_REGION" $os.region "VLAFORGE_PIPELINE_ROOT" (include "vlaforge.pipelineRoot" .) -}}
{{- with $os.endpoint -}}
{{- $scheme := ternary "http" "https" $os.disableSSL -}}
{{- $_ := set $env "AWS_ENDPOINT_URL" (ternary . (printf "%s://%s" $scheme .) (contains "://" .)) -}}
{{- end -}}
{{- if .Values.monitoring.pushgateway.enabled -}}
{{- $_ := set $env "VLAFORGE_PUSHGATEWAY" (include "vlaforge.pushgatewayUrl" .) -}}
{{- end -}}
{{- toJson $env -}}
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
