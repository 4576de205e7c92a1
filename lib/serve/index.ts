// Serving trained encoders from Node services (the library behind an HTTP front end).
export {
  Encoder, ClosedError, QueueFullError, TimeoutError, InputError,
  type EncoderOptions, type EmbedRequestOptions, type EncoderStats,
} from './encoder';
