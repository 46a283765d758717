/**
 * torchvision ResNet (v1.5: the stride sits in the 3x3 conv of a Bottleneck): resnet18/34 with
 * BasicBlocks, resnet50/101/152 with Bottlenecks. torchvision names (`conv1`, `bn1`,
 * `layer1.0.conv1`, `layer2.0.downsample.0/1`, `fc`), so a torchvision state dict loads as is.
 * Config: `{"architecture": "resnet18", "num_classes": 5}` (+ `id2label`).
 *
 * @example
 * const model = getArchitecture("resnet18").create({ architecture: "resnet18", num_classes: 5 }, "image-classification");
 * const { logits, loss } = model.forward({ pixelValues, labels });
 */
import { forwardChain } from "../autograd/release.ts";
import { Linear } from "../nn/layers.ts";
import { Module } from "../nn/module.ts";
import { adaptiveAvgPool2d, flatten, maxPool2d } from "../ops/index.ts";
import { ValueError } from "../tensor/errors.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { buildModel } from "./common.ts";
import { registerArchitecture } from "./registry.ts";
import { BatchNorm2d, Conv2d, ImageClassifier, readVisionLabels } from "./vision-common.ts";

/** conv3x3 -> BN -> ReLU -> conv3x3 -> BN, + identity (or downsample), ReLU. */
export class BasicBlock extends Module {
  static readonly expansion = 1;
  conv1: Conv2d;
  bn1: BatchNorm2d;
  conv2: Conv2d;
  bn2: BatchNorm2d;
  downsample: [Conv2d, BatchNorm2d] | null;
  constructor(inplanes: number, planes: number, stride: number, downsample: [Conv2d, BatchNorm2d] | null) {
    super();
    this.conv1 = new Conv2d(inplanes, planes, 3, { stride, padding: 1 });
    this.bn1 = new BatchNorm2d(planes);
    this.conv2 = new Conv2d(planes, planes, 3, { padding: 1 });
    this.bn2 = new BatchNorm2d(planes);
    this.downsample = downsample;
  }
  forward(x: Tensor): Tensor {
    const out = forwardChain(x, [this.conv1, (t) => this.bn1.forward(t, "relu"), this.conv2]);
    return this.bn2.forward(out, "relu", shortcut(this.downsample, x));
  }
}

/** conv1x1 -> BN -> ReLU -> conv3x3 (stride) -> BN -> ReLU -> conv1x1 (x4) -> BN, + shortcut, ReLU. */
export class Bottleneck extends Module {
  static readonly expansion = 4;
  conv1: Conv2d;
  bn1: BatchNorm2d;
  conv2: Conv2d;
  bn2: BatchNorm2d;
  conv3: Conv2d;
  bn3: BatchNorm2d;
  downsample: [Conv2d, BatchNorm2d] | null;
  constructor(inplanes: number, planes: number, stride: number, downsample: [Conv2d, BatchNorm2d] | null) {
    super();
    this.conv1 = new Conv2d(inplanes, planes, 1);
    this.bn1 = new BatchNorm2d(planes);
    this.conv2 = new Conv2d(planes, planes, 3, { stride, padding: 1 });
    this.bn2 = new BatchNorm2d(planes);
    this.conv3 = new Conv2d(planes, planes * 4, 1);
    this.bn3 = new BatchNorm2d(planes * 4);
    this.downsample = downsample;
  }
  forward(x: Tensor): Tensor {
    const out = forwardChain(x, [
      this.conv1,
      (t) => this.bn1.forward(t, "relu"),
      this.conv2,
      (t) => this.bn2.forward(t, "relu"),
      this.conv3,
    ]);
    return this.bn3.forward(out, "relu", shortcut(this.downsample, x));
  }
}

function shortcut(ds: [Conv2d, BatchNorm2d] | null, x: Tensor): Tensor {
  return ds ? ds[1].forward(ds[0].forward(x)) : x;
}

type Block = typeof BasicBlock | typeof Bottleneck;

/** Block type and blocks per stage of each torchvision ResNet. */
export const RESNET_SPECS: Readonly<Record<string, { block: Block; layers: [number, number, number, number] }>> = {
  resnet18: { block: BasicBlock, layers: [2, 2, 2, 2] },
  resnet34: { block: BasicBlock, layers: [3, 4, 6, 3] },
  resnet50: { block: Bottleneck, layers: [3, 4, 6, 3] },
  resnet101: { block: Bottleneck, layers: [3, 4, 23, 3] },
  resnet152: { block: Bottleneck, layers: [3, 8, 36, 3] },
};

function intList(raw: Record<string, unknown>, key: string, file: string, dflt: number[], max: number): number[] {
  const v = raw[key] ?? dflt;
  if (!Array.isArray(v) || v.length !== 4 || !v.every((x) => Number.isInteger(x) && x >= 1 && x <= max))
    throw new ValueError(`${file}: ${key} must be 4 integers in [1, ${max}], got ${JSON.stringify(v)}`);
  return v as number[];
}

/** Block type, blocks per stage and stage widths: fixed for resnet18..152, from config.json for "resnet". */
function resnetSpec(modelType: string, raw: Record<string, unknown>, file: string) {
  const fixed = RESNET_SPECS[modelType];
  if (fixed) return { block: fixed.block, layers: [...fixed.layers], channels: [64, 128, 256, 512] };
  if (modelType !== "resnet")
    throw new ValueError(
      `${file}: unknown ResNet '${modelType}' (known: resnet, ${Object.keys(RESNET_SPECS).join(", ")})`,
    );
  const name = raw.block ?? "BasicBlock";
  if (name !== "BasicBlock" && name !== "Bottleneck")
    throw new ValueError(`${file}: block must be "BasicBlock" or "Bottleneck", got ${JSON.stringify(name)}`);
  return {
    block: name === "BasicBlock" ? BasicBlock : Bottleneck,
    layers: intList(raw, "layers", file, [2, 2, 2, 2], 64),
    channels: intList(raw, "channels", file, [64, 128, 256, 512], 4096),
  };
}

/**
 * torchvision `ResNet`: stem (conv 7x7/2, BN, ReLU, max-pool 3x3/2), four stages, global average
 * pool, `fc`. `architecture: "resnet"` takes `block`, `layers` and `channels` (stage widths, the
 * stem has `channels[0]`) from config.json, for small models with torchvision's module names.
 */
export class ResNet extends ImageClassifier {
  readonly headPrefix = "fc";
  readonly numFeatures: number;
  readonly config: Record<string, unknown>;
  conv1: Conv2d;
  bn1: BatchNorm2d;
  layer1: InstanceType<Block>[];
  layer2: InstanceType<Block>[];
  layer3: InstanceType<Block>[];
  layer4: InstanceType<Block>[];
  fc: Linear;
  constructor(
    readonly modelType: string,
    raw: Record<string, unknown>,
    file = "config.json",
  ) {
    super();
    const spec = resnetSpec(modelType, raw, file);
    const { channels, layers } = spec;
    const labels = readVisionLabels({ raw, file });
    this.config =
      modelType === "resnet"
        ? {
            ...raw,
            architecture: modelType,
            block: spec.block === BasicBlock ? "BasicBlock" : "Bottleneck",
            layers,
            channels,
          }
        : { ...raw, architecture: modelType };
    let inplanes = channels[0];
    const stage = (planes: number, blocks: number, stride: number) => {
      const exp = spec.block.expansion;
      const ds: [Conv2d, BatchNorm2d] | null =
        stride !== 1 || inplanes !== planes * exp
          ? [new Conv2d(inplanes, planes * exp, 1, { stride }), new BatchNorm2d(planes * exp)]
          : null;
      const out = [new spec.block(inplanes, planes, stride, ds)];
      inplanes = planes * exp;
      for (let i = 1; i < blocks; i++) out.push(new spec.block(inplanes, planes, 1, null));
      return out;
    };
    this.conv1 = new Conv2d(3, channels[0], 7, { stride: 2, padding: 3 });
    this.bn1 = new BatchNorm2d(channels[0]);
    this.layer1 = stage(channels[0], layers[0], 1);
    this.layer2 = stage(channels[1], layers[1], 2);
    this.layer3 = stage(channels[2], layers[2], 2);
    this.layer4 = stage(channels[3], layers[3], 2);
    this.numFeatures = inplanes;
    this.fc = new Linear(inplanes, labels.length);
    this.setLabels(labels);
  }
  pooledFeatures(pixelValues: Tensor): Tensor {
    // Under noGrad in a scope (the feature cache) each activation is freed once the next exists.
    return forwardChain(pixelValues, [
      this.conv1,
      (x) => this.bn1.forward(x, "relu"),
      (x) => maxPool2d(x, 3, 2, 1),
      ...this.layer1,
      ...this.layer2,
      ...this.layer3,
      ...this.layer4,
      (x) => flatten(adaptiveAvgPool2d(x, 1), 1),
    ]);
  }
  protected headLayer(): Linear {
    return this.fc;
  }
  protected newHead(numClasses: number): void {
    this.fc = new Linear(this.numFeatures, numClasses);
  }
}

for (const name of ["resnet", ...Object.keys(RESNET_SPECS)]) {
  registerArchitecture({
    modelTypes: [name],
    tasks: ["image-classification"],
    create(config, task, file = "config.json", opts) {
      if (task !== "image-classification")
        throw new ValueError(`${file}: ${name} has only an 'image-classification' head, not '${task}'`);
      return buildModel(opts, () => new ResNet(name, config, file));
    },
  });
}
