// Image inputs: IDX files, image folders, the evaluation transform and batched sources.
export { readIdx, parseIdx, loadIdxImages, parseIdxImages, loadIdxLabels, IdxError, type IdxArray, type IdxDType, type IdxTypedArray, type IdxImages } from './idx';
export {
  IMAGE_EXTENSIONS, isImageFile, listImageFiles, listClassFolder, decodeImage, rgbToGray, grayToRgb,
  type ListOptions, type ClassFolder, type RawImage, type DecodeOptions,
} from './image-folder';
export {
  IMAGENET_MEAN, IMAGENET_STD, GRAY_MEAN, GRAY_STD, defaultNormalization, resizedSize, centerCropOffset, centerCrop,
  resizeShorterAndCenterCrop, toNormalizedTensor, type Normalization,
} from './preprocess';
export { openImageSource, imageBatches, type ImageSource, type ImageSourceSpec, type OpenOptions, type ImageBatchOptions, type ImageBatch } from './source';
export { openDataset, defaultLabelsFile, type ImageDataset, type DatasetOptions } from './dataset';
export { DataLoader, type LoaderOptions, type Batch } from './loader';
export * from './augment';
export {
  rgbToGrayscale, grayscale, adjustBrightness, adjustContrast, adjustSaturation, adjustHue, rgbToHsv, hsvToRgb, applyColorJitter, sampleJitter,
  colorJitter, randomGrayscale, normalize as normalizeChannels, DEFAULT_JITTER, JITTER_OPS, type Factor, type JitterConfig, type JitterFactors, type JitterOp,
} from './color';
