-- Argo CD health check for studios.dev/Studio
-- (argocd-cm: resource.customizations.health.studios.dev_Studio; see docs/gitops.md).
--   no status yet, or status.observedGeneration < metadata.generation -> Progressing
--   condition Stalled=True, or phase Errored                       -> Degraded
--   condition Reconciling=True, phase Starting / Stopping          -> Progressing
--   phase Running                                                   -> Healthy
--   phase Stopped, stopReason LifespanExpired (spec says Running)   -> Suspended
--   phase Stopped on request (state: Stopped)                       -> Healthy
local hs = {}
if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the studio operator to report a status"
  return hs
end
local status = obj.status
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the studio operator to observe generation " .. tostring(generation)
  return hs
end
local message = status.message or ""
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Stalled" and condition.status == "True" then
      hs.status = "Degraded"
      hs.message = condition.message or message
      return hs
    end
  end
end
local phase = status.phase
if phase == "Errored" then
  hs.status = "Degraded"
elseif phase == "Running" then
  hs.status = "Healthy"
elseif phase == "Starting" or phase == "Stopping" then
  hs.status = "Progressing"
elseif phase == "Stopped" and status.stopReason == "LifespanExpired" then
  -- The spec asks for a running session: someone has to start a new one.
  hs.status = "Suspended"
elseif phase == "Stopped" then
  -- Stopped as declared: the desired state (Argo CD finishes a sync wave only on Healthy or Degraded).
  hs.status = "Healthy"
else
  hs.status = "Progressing"
end
hs.message = message
return hs
