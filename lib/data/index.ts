// Image inputs: IDX files, image folders, the one dataset reader and loader, the evaluation transform, augmentation.
export { readIdx, parseIdx, loadIdxImages, parseIdxImages, loadIdxLabels, IdxError, type IdxArray, type IdxDType, type IdxTypedArray, type IdxImages } from './idx';
export {
  IMAGE_EXTENSIONS, isImageFile, listImageFiles, listClassFolder, decodeImage, rgbToGray, grayToRgb,
  type ListOptions, type ClassFolder, type RawImage, type DecodeOptions,
} from './image-folder';
export {
  IMAGENET_MEAN, IMAGENET_STD, GRAY_MEAN, GRAY_STD, defaultNormalization, resizedSize, centerCropOffset, centerCrop,
  resizeShorterAndCenterCrop, normalizeImages, toNormalizedTensor, type Normalization,
} from './preprocess';
export { openDataset, defaultLabelsFile, type ImageDataset, type DatasetOptions, type DatasetSpec } from './dataset';
export { packDataset, openPack, readPackIndex, verifyPack, isPack, PACK_INDEX, type PackIndex, type PackShard, type PackOptions } from './shards';
export { DataLoader, disposeBatch, type LoaderOptions, type LoaderMode, type Batch, type TrainStep } from './loader';
export * from './augment';
export {
  rgbToGrayscale, grayscale, adjustBrightness, adjustContrast, adjustSaturation, adjustHue, rgbToHsv, hsvToRgb, applyColorJitter, sampleJitter,
  colorJitter, randomGrayscale, normalize as normalizeChannels, DEFAULT_JITTER, JITTER_OPS, type Factor, type JitterConfig, type JitterFactors, type JitterOp,
} from './color';
export { mixupCutmix, smoothTargets, softTargetCrossEntropy, sampleMixParams, cutmixBox, type MixupConfig, type MixParams, type CutmixBox } from './mixup';
export { randAugment, parseRandAugment, RAND_AUGMENT_OPS, RAND_AUGMENT_INCREASING_OPS, type RandAugmentConfig, type AugmentOpName } from './rand-augment';
export { randomErasing } from './random-erasing';
export { labelFractionSubset, readSubset, subsetDataset, type LabelSubset, type LabelFractionOptions } from './subset';
