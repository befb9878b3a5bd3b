"""Reference networks in plain torch (no torchvision: its compiled ops may not match a CPU torch).

Layouts follow torchvision where a torchvision model exists (ResNet v1.5, VGG,
MobileNet v2, SqueezeNet 1.0, ShuffleNet v2, DenseNet), so qualified names
(`layer4.1.conv2`, `features.3`) mean what a PyTorch user expects. `width`
scales channels so the oracles (real forward and backward passes) stay fast;
the geometry does not depend on it.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _c(channels, width):
    return max(1, int(channels * width))


# ------------------------------------------------------------------ ResNet (torchvision layout, v1.5)

class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)  # v1.5: stride on the 3x3
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self, block, layers, width=1.0, num_classes=1000):
        super().__init__()
        self.inplanes = _c(64, width)
        self.conv1 = nn.Conv2d(3, self.inplanes, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, _c(64, width), layers[0])
        self.layer2 = self._make_layer(block, _c(128, width), layers[1], 2)
        self.layer3 = self._make_layer(block, _c(256, width), layers[2], 2)
        self.layer4 = self._make_layer(block, _c(512, width), layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(_c(512, width) * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def resnet18(width=1.0, num_classes=1000):
    return ResNet(BasicBlock, [2, 2, 2, 2], width, num_classes)


def resnet50(width=1.0, num_classes=1000):
    return ResNet(Bottleneck, [3, 4, 6, 3], width, num_classes)


# ------------------------------------------------------------------ VGG-11 (configuration "A")

class VGG(nn.Module):
    def __init__(self, cfg=(64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"), width=1.0,
                 hidden=4096, num_classes=1000):
        super().__init__()
        layers, c = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, _c(v, width), 3, padding=1), nn.ReLU(inplace=True)]
                c = _c(v, width)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(nn.Linear(c * 49, hidden), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(hidden, num_classes))

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def vgg11(width=1.0, hidden=4096, num_classes=1000):
    return VGG(width=width, hidden=hidden, num_classes=num_classes)


# ------------------------------------------------------------------ MobileNet v2 (torchvision layout)

def _make_divisible(v, divisor=8):
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin, cout, kernel=3, stride=1, groups=1):
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = [ConvBNReLU(inp, hidden, 1)] if expand_ratio != 1 else []
        layers += [ConvBNReLU(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, width_mult=1.0, num_classes=1000):
        super().__init__()
        settings = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
                    [6, 160, 3, 2], [6, 320, 1, 1]]
        cin = _make_divisible(32 * width_mult)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult))
        features = [ConvBNReLU(3, cin, stride=2)]
        for t, c, n, s in settings:
            cout = _make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(ConvBNReLU(cin, self.last_channel, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last_channel, num_classes))

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


# ------------------------------------------------------------------ Inception-style blocks (rectangular kernels)

def _cbr(cin, cout, kernel, stride=1, padding=0):
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class InceptionA(nn.Module):
    """1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool3-1x1, concatenated (Inception v3's Mixed_5b shape)."""

    def __init__(self, cin, c):
        super().__init__()
        self.branch1x1 = _cbr(cin, c, 1)
        self.branch5x5 = nn.Sequential(_cbr(cin, c, 1), _cbr(c, c, 5, padding=2))
        self.branch3x3dbl = nn.Sequential(_cbr(cin, c, 1), _cbr(c, c, 3, padding=1), _cbr(c, c, 3, padding=1))
        self.branch_pool = _cbr(cin, c, 1)

    def forward(self, x):
        pool = self.branch_pool(F.avg_pool2d(x, 3, 1, 1))
        return torch.cat([self.branch1x1(x), self.branch5x5(x), self.branch3x3dbl(x), pool], 1)


class InceptionC(nn.Module):
    """Factorised 7x7: 1x7 then 7x1, and a 1x1-(1x7) branch that is only wide (per-axis RFs differ)."""

    def __init__(self, cin, c):
        super().__init__()
        self.branch1x1 = _cbr(cin, c, 1)
        self.branch7x7 = nn.Sequential(_cbr(cin, c, 1), _cbr(c, c, (1, 7), padding=(0, 3)),
                                       _cbr(c, c, (7, 1), padding=(3, 0)))
        self.branch_wide = nn.Sequential(_cbr(cin, c, 1), _cbr(c, c, (1, 9), padding=(0, 4)))

    def forward(self, x):
        return torch.cat([self.branch1x1(x), self.branch7x7(x), self.branch_wide(x)], 1)


class ReductionA(nn.Module):
    """3x3/2 valid | 1x1-3x3-3x3/2 valid | maxpool 3/2 (Inception v3's Mixed_6a shape)."""

    def __init__(self, cin, c):
        super().__init__()
        self.branch3x3 = _cbr(cin, c, 3, stride=2)
        self.branch3x3dbl = nn.Sequential(_cbr(cin, c, 1), _cbr(c, c, 3, padding=1), _cbr(c, c, 3, stride=2))

    def forward(self, x):
        return torch.cat([self.branch3x3(x), self.branch3x3dbl(x), F.max_pool2d(x, 3, 2)], 1)


class InceptionNet(nn.Module):
    def __init__(self, width=1.0, num_classes=10):
        super().__init__()
        c = _c(32, width)
        self.stem = nn.Sequential(_cbr(3, c, 3, 2), _cbr(c, c, 3), _cbr(c, 2 * c, 3, padding=1),
                                  nn.MaxPool2d(3, 2))
        self.mixed_1 = InceptionA(2 * c, c)
        self.mixed_2 = ReductionA(4 * c, c)
        self.mixed_3 = InceptionC(2 * c + 4 * c, c)
        self.fc = nn.Linear(3 * c, num_classes)

    def forward(self, x):
        x = self.mixed_3(self.mixed_2(self.mixed_1(self.stem(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ------------------------------------------------------------------ DenseNet-style concatenation

class DenseLayer(nn.Module):
    def __init__(self, cin, growth, bn_size=4):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, features):
        x = torch.cat(features, 1)
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class DenseBlock(nn.ModuleDict):
    def __init__(self, layers, cin, growth):
        super().__init__()
        for i in range(layers):
            self[f"denselayer{i + 1}"] = DenseLayer(cin + i * growth, growth)

    def forward(self, x):
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, 1, bias=False),
                         nn.AvgPool2d(2, 2))


class DenseNet(nn.Module):
    def __init__(self, growth=8, blocks=(3, 4, 3), init=16, num_classes=10):
        super().__init__()
        layers = [nn.Conv2d(3, init, 7, 2, 3, bias=False), nn.BatchNorm2d(init), nn.ReLU(inplace=True),
                  nn.MaxPool2d(3, 2, 1)]
        c = init
        for i, n in enumerate(blocks):
            layers.append(DenseBlock(n, c, growth))
            c += n * growth
            if i != len(blocks) - 1:
                layers.append(Transition(c, c // 2))
                c //= 2
        layers.append(nn.BatchNorm2d(c))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        out = F.relu(self.features(x))
        out = torch.flatten(F.adaptive_avg_pool2d(out, (1, 1)), 1)
        return self.classifier(out)


# ------------------------------------------------------------------ ShuffleNet v2-style (chunk + channel shuffle)

def channel_shuffle(x, groups):
    n, c, h, w = x.size()
    x = x.view(n, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(n, -1, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride = stride
        half = cout // 2
        if stride > 1:
            self.branch1 = nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
                                         nn.BatchNorm2d(cin), nn.Conv2d(cin, half, 1, bias=False),
                                         nn.BatchNorm2d(half), nn.ReLU(inplace=True))
        else:
            self.branch1 = nn.Sequential()
        b_in = cin if stride > 1 else half
        self.branch2 = nn.Sequential(nn.Conv2d(b_in, half, 1, bias=False), nn.BatchNorm2d(half),
                                     nn.ReLU(inplace=True),
                                     nn.Conv2d(half, half, 3, stride, 1, groups=half, bias=False),
                                     nn.BatchNorm2d(half), nn.Conv2d(half, half, 1, bias=False),
                                     nn.BatchNorm2d(half), nn.ReLU(inplace=True))

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNet(nn.Module):
    def __init__(self, widths=(24, 48, 96, 192), repeats=(2, 3, 2), last=256, num_classes=10):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                   nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, c = [], widths[0]
        for n, cout in zip(repeats, widths[1:]):
            stages.append(nn.Sequential(ShuffleUnit(c, cout, 2), *[ShuffleUnit(cout, cout, 1) for _ in range(n - 1)]))
            c = cout
        self.stages = nn.Sequential(*stages)
        self.conv5 = nn.Sequential(nn.Conv2d(c, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU(inplace=True))
        self.fc = nn.Linear(last, num_classes)

    def forward(self, x):
        x = self.conv5(self.stages(self.maxpool(self.conv1(x))))
        return self.fc(x.mean([2, 3]))


# ------------------------------------------------------------------ SqueezeNet 1.0 (fire modules, ceil-mode pools)

class Fire(nn.Module):
    def __init__(self, cin, squeeze, e1, e3):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, e1, 1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, e3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


class SqueezeNet(nn.Module):
    def __init__(self, width=1.0, num_classes=1000):
        super().__init__()

        def w(v):
            return _c(v, width)
        self.features = nn.Sequential(
            nn.Conv2d(3, w(96), 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(w(96), w(16), w(64), w(64)), Fire(w(128), w(16), w(64), w(64)), Fire(w(128), w(32), w(128), w(128)),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(w(256), w(32), w(128), w(128)), Fire(w(256), w(48), w(192), w(192)),
            Fire(w(384), w(48), w(192), w(192)), Fire(w(384), w(64), w(256), w(256)),
            nn.MaxPool2d(3, 2, ceil_mode=True), Fire(w(512), w(64), w(256), w(256)))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(w(512), num_classes, 1), nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d((1, 1)))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


# ------------------------------------------------------------------ dilated (DeepLab-style) blocks and an ASPP

class DilatedBlock(nn.Module):
    def __init__(self, c, dilation):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class ASPP(nn.Module):
    def __init__(self, cin, c, rates=(2, 4, 6)):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(cin, c, 1)] +
                                   [nn.Conv2d(cin, c, 3, padding=r, dilation=r) for r in rates])
        self.project = nn.Conv2d(c * (len(rates) + 1), c, 1)

    def forward(self, x):
        return self.project(torch.cat([F.relu(conv(x)) for conv in self.convs], dim=1))


class DeepLabNet(nn.Module):
    def __init__(self, c=8, num_classes=5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1), nn.ReLU(), nn.Conv2d(c, c, 3, 2, 1), nn.ReLU())
        self.block1 = DilatedBlock(c, 2)
        self.block2 = DilatedBlock(c, 4)
        self.aspp = ASPP(c, c)
        self.head = nn.Conv2d(c, num_classes, 1)

    def forward(self, x):
        return self.head(self.aspp(self.block2(self.block1(self.stem(x)))))


# ------------------------------------------------------------------ squeeze-excitation

class SEBlock(nn.Module):
    def __init__(self, c, reduction=4):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.fc1 = nn.Conv2d(c, c // reduction, 1)
        self.fc2 = nn.Conv2d(c // reduction, c, 1)

    def forward(self, x):
        out = F.relu(self.bn(self.conv(x)))
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(out, 1)))))
        return F.relu(x + out * gate)


class SENet(nn.Module):
    def __init__(self, c=8, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, c, 3, 2, 1)
        self.se1 = SEBlock(c)
        self.pool = nn.MaxPool2d(2)
        self.se2 = SEBlock(c)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.se2(self.pool(self.se1(self.conv1(x))))
        return self.fc(x.mean((2, 3)))


# ------------------------------------------------------------------ functional forms, odd paddings, norms, 1-D

class LayerNorm2d(nn.LayerNorm):
    """timm's LayerNorm2d: LayerNorm over channels of an NCHW map via permutes."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7, LayerNorm channels-last, Linear (a 1x1 conv), GELU, Linear, residual."""

    def __init__(self, c):
        super().__init__()
        self.dwconv = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c)
        self.pwconv1 = nn.Linear(c, 4 * c)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * c, c)

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class FunctionalNet(nn.Module):
    """F.max_pool2d / F.avg_pool2d (ceil_mode), torch.add, 'same' padding with an even kernel,
    reflect and circular padding modes, F.pad, GroupNorm, LayerNorm2d, a ConvNeXt block."""

    def __init__(self, c=6, num_classes=4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, c, 4, padding="same")  # even kernel: the odd pixel goes after
        self.gn = nn.GroupNorm(2, c)
        self.conv2 = nn.Conv2d(c, c, 3, stride=2, padding=1, padding_mode="reflect")
        self.conv3 = nn.Conv2d(c, c, (3, 5), padding=(1, 2), padding_mode="circular")
        self.ln = LayerNorm2d(c)
        self.block = ConvNeXtBlock(c)
        self.conv4 = nn.Conv2d(c, c, 2, padding="valid")
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = F.max_pool2d(self.gn(self.conv1(x)), 3, 2, 1)
        y = self.conv3(F.relu(self.conv2(x)))
        x = torch.add(F.avg_pool2d(x, 2, ceil_mode=True), y)
        x = self.block(self.ln(x))
        x = self.conv4(F.pad(x, (1, 0, 2, 1)))
        return self.fc(torch.flatten(F.adaptive_max_pool2d(x, 1), 1))


class UntraceableNet(nn.Module):
    """Control flow on a shape (fx cannot trace it; the meta-device recorder can)."""

    def __init__(self, c=4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(c, c, 5, padding=2)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        if x.shape[-1] > 16:  # data-independent but fx sees a Proxy here
            x = self.conv2(x)
        return x + self.conv3(x)


class Audio1d(nn.Module):
    """A 1-D model: Conv1d, MaxPool1d, a residual add."""

    def __init__(self, c=4):
        super().__init__()
        self.conv1 = nn.Conv1d(1, c, 9, stride=2, padding=4)
        self.pool = nn.MaxPool1d(3, 2)
        self.conv2 = nn.Conv1d(c, c, 5, padding=4, dilation=2)
        self.conv3 = nn.Conv1d(c, c, 3, padding=1)
        self.fc = nn.Linear(c, 3)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = x + self.conv3(F.relu(self.conv2(x)))
        return self.fc(x.mean(-1))


class Volume3d(nn.Sequential):
    """A 3-D model (video, volumes): anisotropic Conv3d and MaxPool3d, BatchNorm3d, a global pool head."""

    def __init__(self, c=4):
        super().__init__(nn.Conv3d(1, c, (1, 3, 3), (1, 2, 2), (0, 1, 1), bias=False), nn.BatchNorm3d(c), nn.ReLU(),
                         nn.MaxPool3d((1, 2, 2)), nn.Conv3d(c, c, (3, 1, 1)), nn.AdaptiveAvgPool3d(1), nn.Flatten(),
                         nn.Linear(c, 2))


# ------------------------------------------------------------------ issue 17: patterns of timm and torchvision
# Written after timm's layers (Conv2dSame, MaxPool2dSame, ScaledStdConv2d, DropPath, LayerScale) and
# torchvision's StochasticDepth, so that the suite checks them without either library.

import math  # noqa: E402


def _same_pad(n, k, s, d):
    return max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)


def pad_same(x, kernel, stride, dilation=(1, 1), value=0.0):
    """TF 'SAME': the padding is computed from the input's shape in forward (timm.layers.padding)."""
    ih, iw = x.size()[-2:]
    ph = _same_pad(ih, kernel[0], stride[0], dilation[0])
    pw = _same_pad(iw, kernel[1], stride[1], dilation[1])
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=value)


class Conv2dSame(nn.Conv2d):
    """timm's Conv2dSame: a Conv2d subclass whose forward pads by itself (its `padding` is 0)."""

    def forward(self, x):
        x = pad_same(x, self.weight.shape[-2:], self.stride, self.dilation)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MaxPool2dSame(nn.MaxPool2d):
    """timm's MaxPool2dSame: pads with -inf in forward, then max-pools without padding."""

    def forward(self, x):
        k, s = (self.kernel_size,) * 2, (self.stride,) * 2
        x = pad_same(x, k, s, value=-float("inf"))
        return F.max_pool2d(x, self.kernel_size, self.stride, 0, self.dilation, self.ceil_mode)


class SameNet(nn.Module):
    """The issue's reproduction (3x3/2 then 5x5/2 SAME convs, 8 channels, no bias) and a SAME max pool."""

    def __init__(self, pool=False):
        super().__init__()
        self.conv1 = Conv2dSame(3, 8, 3, 2, bias=False)
        self.conv2 = Conv2dSame(8, 8, 5, 2, bias=False)
        self.pool = MaxPool2dSame(3, 2) if pool else nn.Identity()

    def forward(self, x):
        return self.pool(self.conv2(self.conv1(x)))


class ScaledStdConv2d(nn.Conv2d):
    """NF-ResNet's weight standardisation with a learned gain (timm.layers.std_conv)."""

    def __init__(self, cin, cout, k, stride=1, padding=0, bias=True):
        super().__init__(cin, cout, k, stride, padding, bias=bias)
        self.gain = nn.Parameter(torch.ones(cout, 1, 1, 1))
        self.scale = (self.weight[0].numel()) ** -0.5

    def forward(self, x):
        weight = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                              weight=(self.gain * self.scale).view(-1), training=True, momentum=0.0,
                              eps=1e-6).reshape_as(self.weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def drop_path(x, drop_prob: float = 0.0, training: bool = False):
    """timm's drop_path: the identity in eval mode."""
    if drop_prob == 0.0 or not training:
        return x
    keep = 1 - drop_prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        return drop_path(x, self.p, self.training)


def stochastic_depth(input, p: float, mode: str, training: bool = True):
    """torchvision.ops.stochastic_depth: wrapped for fx (one call_function node), identity in eval."""
    if not training or p == 0.0:
        return input
    noise = torch.empty([input.shape[0]] + [1] * (input.ndim - 1), dtype=input.dtype).bernoulli_(1 - p)
    return input * noise / (1 - p)


torch.fx.wrap("stochastic_depth")


class StochasticDepth(nn.Module):
    def __init__(self, p, mode="row"):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x):
        return stochastic_depth(x, self.p, self.mode, self.training)


class LayerScaleBlock(nn.Module):
    """ConvNeXt-style residual with layer scale `x + drop(gamma * f(x))` and a scaled-WS conv."""

    def __init__(self, c, drop="path"):
        super().__init__()
        self.conv = ScaledStdConv2d(c, c, 3, padding=1)
        self.gamma = nn.Parameter(torch.full((c,), 1e-1))
        self.drop = DropPath(0.1) if drop == "path" else StochasticDepth(0.1)

    def forward(self, x):
        return x + self.drop(self.gamma.view(1, -1, 1, 1) * F.gelu(self.conv(x)))


class LayerScaleNet(nn.Module):
    """Parameters used in arithmetic (gain on a weight, layer scale, a learned per-channel
    offset); DropPath and torchvision's StochasticDepth (identity in eval)."""

    def __init__(self, c=8, num_classes=5):
        super().__init__()
        self.stem = ScaledStdConv2d(3, c, 3, 2, 1)
        self.pos = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.block1 = LayerScaleBlock(c, "path")
        self.block2 = LayerScaleBlock(c, "stochastic_depth")
        self.head = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.stem(x) + self.pos
        x = self.block2(self.block1(x))
        return self.head(x.mean((2, 3)))
