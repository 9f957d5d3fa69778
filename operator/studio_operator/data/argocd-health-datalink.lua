-- Argo CD health check for studios.dev/DataLink
-- (argocd-cm: resource.customizations.health.studios.dev_DataLink; see docs/gitops.md).
--   no status yet, or status.observedGeneration < metadata.generation -> Progressing
--   condition Stalled=True (NoSuchBucket, AccessDenied, ...)        -> Degraded
--   condition Ready=True                                            -> Healthy
--   otherwise (a transient failure, checked again in about 30 s)    -> Progressing
local hs = {}
local status = obj.status
local generation = obj.metadata and obj.metadata.generation
if status == nil or status.observedGeneration == nil or (generation ~= nil and status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the studio operator to check the data link"
  return hs
end
hs.status = "Progressing"
hs.message = ""
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Stalled" and condition.status == "True" then
      hs.status = "Degraded"
      hs.message = condition.message or ""
      return hs
    end
    if condition.type == "Ready" then
      hs.message = condition.message or ""
      if condition.status == "True" then
        hs.status = "Healthy"
      end
    end
  end
end
return hs
