export * from './document.js'
export {getShadow, hasShadow, listDrift, rejectionError, setDesiredForDevices, setDesiredForSelection, shadowHistory, shadowsOf, SHADOW_CHANGED_CHANNEL, SHADOW_CHANNEL, updateShadow,
  type BulkResult, type DriftEntry, type HistoryEntry, type UpdateContext, type UpdateOutcome} from './store.js'
export {createShadowService, SHADOW_SHARE_GROUP, SHADOW_TOPICS, type ShadowPublisher, type ShadowService, type ShadowStats} from './sync.js'
export {cliActor, desiredPatch, setDesired, setDesiredBySelector, watchShadow, type SetResult} from './operations.js'
export {setDesiredPatches, writeDesired, type DesiredRow} from './bulk.js'
