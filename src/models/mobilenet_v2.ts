/**
 * torchvision MobileNetV2: a 3x3/2 stem, 17 inverted-residual blocks (expand 1x1 -> depthwise
 * 3x3 -> linear 1x1 projection, residual when shapes allow), a 1x1 conv to `last_channel`, global
 * average pool, `classifier` = [Dropout, Linear]. torchvision names: `features.0.0` (conv),
 * `features.0.1` (BN), `features.N.conv.0.0`, ..., `features.18.1`, `classifier.1`. Channel counts
 * follow `width_mult` rounded with `_make_divisible(v, round_nearest = 8)`.
 *
 * @example
 * const model = getArchitecture("mobilenet_v2").create({ architecture: "mobilenet_v2", num_classes: 5, width_mult: 0.25 }, "image-classification");
 */
import { forwardChain } from "../autograd/release.ts";
import { getNumber } from "../formats/hf-config.ts";
import { Dropout, Linear } from "../nn/layers.ts";
import { Module, type Parameter } from "../nn/module.ts";
import { adaptiveAvgPool2d, add, flatten } from "../ops/index.ts";
import { ValueError } from "../tensor/errors.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { buildModel } from "./common.ts";
import { registerArchitecture } from "./registry.ts";
import { BatchNorm2d, Conv2d, ConvBNAct, ImageClassifier, readVisionLabels } from "./vision-common.ts";

/** torchvision `_make_divisible`: nearest multiple of `divisor`, at least `divisor`, never more than 10% down. */
export function makeDivisible(v: number, divisor: number, minValue = divisor): number {
  let n = Math.max(minValue, Math.floor(Math.trunc(v + divisor / 2) / divisor) * divisor);
  if (n < 0.9 * v) n += divisor;
  return n;
}

/** Expansion t, output channels c, repeats n, first stride s (torchvision's default setting). */
export const INVERTED_RESIDUAL_SETTING: readonly (readonly [number, number, number, number])[] = [
  [1, 16, 1, 1],
  [6, 24, 2, 2],
  [6, 32, 3, 2],
  [6, 64, 4, 2],
  [6, 96, 3, 1],
  [6, 160, 3, 2],
  [6, 320, 1, 1],
];

/** torchvision `InvertedResidual`; `conv` is [expand?, depthwise, project conv, project BN]. */
export class InvertedResidual extends Module {
  conv: Module[];
  readonly useResConnect: boolean;
  constructor(inp: number, oup: number, stride: number, expandRatio: number) {
    super();
    const hidden = Math.round(inp * expandRatio);
    this.useResConnect = stride === 1 && inp === oup;
    const layers: Module[] = [];
    if (expandRatio !== 1) layers.push(new ConvBNAct(inp, hidden, 1));
    layers.push(new ConvBNAct(hidden, hidden, 3, { stride, groups: hidden }));
    layers.push(new Conv2d(hidden, oup, 1), new BatchNorm2d(oup));
    this.conv = layers;
  }
  forward(x: Tensor): Tensor {
    const y = forwardChain(x, this.conv as (ConvBNAct | Conv2d | BatchNorm2d)[]);
    return this.useResConnect ? add(x, y) : y;
  }
}

/** The head: a Linear with a bias, N(0, 0.01) weight and zero bias (torchvision's init). */
type Head = Linear & { bias: Parameter };
const newHeadLayer = (inF: number, numClasses: number) => new Linear(inF, numClasses, { std: 0.01 }) as Head;

/** torchvision `MobileNetV2` (config keys: `num_classes`, `width_mult`, `round_nearest`, `dropout`). */
export class MobileNetV2 extends ImageClassifier {
  readonly modelType = "mobilenet_v2";
  readonly headPrefix = "classifier.1";
  readonly numFeatures: number;
  readonly config: Record<string, unknown>;
  features: Module[];
  classifier: [Dropout, Head];
  constructor(raw: Record<string, unknown>, file = "config.json") {
    super();
    const src = { raw, file };
    const widthMult = getNumber(src, "width_mult", 1, { min: 1e-3, max: 100 });
    const round = getNumber(src, "round_nearest", 8, { integer: true, min: 1, max: 1024 });
    const p = getNumber(src, "dropout", 0.2, { min: 0, max: 1 });
    const labels = readVisionLabels(src);
    this.config = { ...raw, architecture: "mobilenet_v2" };
    let inC = makeDivisible(32 * widthMult, round);
    const last = makeDivisible(1280 * Math.max(1, widthMult), round);
    const features: Module[] = [new ConvBNAct(3, inC, 3, { stride: 2 })];
    for (const [t, c, n, s] of INVERTED_RESIDUAL_SETTING) {
      const outC = makeDivisible(c * widthMult, round);
      for (let i = 0; i < n; i++) {
        features.push(new InvertedResidual(inC, outC, i === 0 ? s : 1, t));
        inC = outC;
      }
    }
    features.push(new ConvBNAct(inC, last, 1));
    this.features = features;
    this.numFeatures = last;
    this.classifier = [new Dropout(p), newHeadLayer(last, labels.length)];
    this.setLabels(labels);
  }
  pooledFeatures(pixelValues: Tensor): Tensor {
    // Under noGrad in a scope (the feature cache) each activation is freed once the next exists.
    return forwardChain(pixelValues, [
      ...(this.features as (ConvBNAct | InvertedResidual)[]),
      (x) => flatten(adaptiveAvgPool2d(x, 1), 1),
    ]);
  }
  override classify(features: Tensor, labels?: Tensor | null) {
    return super.classify(this.classifier[0].forward(features), labels);
  }
  protected headLayer(): Head {
    return this.classifier[1];
  }
  protected newHead(numClasses: number): void {
    this.classifier[1] = newHeadLayer(this.numFeatures, numClasses);
  }
}

registerArchitecture({
  modelTypes: ["mobilenet_v2"],
  tasks: ["image-classification"],
  create(config, task, file = "config.json", opts) {
    if (task !== "image-classification")
      throw new ValueError(`${file}: mobilenet_v2 has only an 'image-classification' head, not '${task}'`);
    return buildModel(opts, () => new MobileNetV2(config, file));
  },
});
