// node/engine: the model, its backends and the serving engine. What the layers above (p2p, api, client, cli)
// use is exported here; everything else is the engine's own. It knows nothing of money or networks.
export { Engine, type EngineAdapters, type EngineOptions } from "./runtime/engine.ts";
export { openEngine, type OpenedEngine, type OpenEngineOptions } from "./runtime/open-engine.ts";
export { complete, type CompleteResult } from "./runtime/complete.ts";
export { checkSampling } from "./runtime/validate.ts";
export type { RequestStream } from "./runtime/request-stream.ts";
export type {
  AdapterEvents,
  AdapterInfo,
  AdapterListing,
  AdapterTier,
  Completion,
  EngineEvent,
  EngineEvents,
  EngineFinishReason,
  EngineLimits,
  EngineRequest,
  EngineStats,
  SchedulerOptions,
  AdmissionOptions,
  SlotStats,
  Usage,
} from "./runtime/types.ts";
export { adapterIdOf, isAdapterId, parseAdapterId, type AdapterId } from "./adapter/id.ts";
export { loadPeftAdapter } from "./adapter/peft.ts";
export { BACKEND_CHOICES, createBackend, type BackendChoice } from "./backend/select.ts";
export { loadModel, modelIdentity } from "./formats/load-model.ts";
export { architectureOf, ARCHITECTURE_FAMILIES, type ArchitectureFamily, type ModelConfig } from "./model/config.ts";
export type { LoadedModel, ModelIdentity } from "./model/weights.ts";
export type { Tokenizer } from "./tokenizer/tokenizer.ts";
export {
  CHAT_ROLES,
  chatTemplateOf,
  jinjaChatTemplate,
  PLAIN_CHAT_TEMPLATE,
  type ChatMessage,
  type ChatRole,
  type ChatTemplate,
} from "./tokenizer/chat-template.ts";
export { Emitter } from "./emitter.ts";
export {
  AdapterError,
  EngineBusyError,
  InvalidOptionError,
  InvalidRequestError,
  ModelFormatError,
  OpenLoraError,
  type Blame,
} from "./errors.ts";
