// Schema machinery every recipe reuses (pretrain today; linprobe, finetune and
// serve next): leaf fields with one message each, path-naming errors, config
// files in JSON or YAML, preset < file < flags merging, and CLI options
// generated from the schema.
export { int, num, probability, choice, text, flag, pair, record } from './fields';
export { ConfigError, parseConfig, issueMessages, sentence, expected, closest, type MessageOptions } from './errors';
export { readConfigFile, formatConfig, CONFIG_FORMATS, type ConfigFormat } from './file';
export { mergeConfig, type DeepPartial } from './merge';
export { addSchemaOptions, schemaOptions, inputFromFlags, checkFlagTable, valueFromText, type FlagSpec, type SchemaOptionsConfig } from './cli';
export { leaves, schemaAt, description, leafKind, type LeafKind } from './schema';
