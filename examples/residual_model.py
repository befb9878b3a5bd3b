"""A small residual network: the README / docs/torch.md example of `rfsweep explain --torch`.

Tools that put forward hooks on every module and treat the calls as one chain
(torch-scan, pytorch-receptive-field) walk conv1, conv2 *and then the 1x1
shortcut* of each block as if they were stacked, so they multiply the jump by
the shortcut's stride a second time and report the wrong receptive field.
"""

import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    """Two 3x3 convs plus a shortcut (a strided 1x1 projection where the shape changes)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = (nn.Conv2d(cin, cout, 1, stride, bias=False) if stride > 1 or cin != cout
                         else nn.Identity())

    def forward(self, x):
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.shortcut(x))


class ResidualNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 7, 2, 3)
        self.block1 = Block(16, 32, 2)
        self.block2 = Block(32, 64, 2)
        self.block3 = Block(64, 64, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(F.relu(self.stem(x)))))
        return self.fc(self.pool(x).flatten(1))


def build():
    return ResidualNet()


# The submodule whose output is the last feature map (what rfsweep's default end-point describes).
FEATURES = "block3"
# What a chain-style hook tool sees: every conv in call order, shortcuts stacked after conv2.
CHAIN_VIEW = "c7s2p3x16,c3s2p1x32,c3p1x32,c1s2p0x32,c3s2p1x64,c3p1x64,c1s2p0x64,c3p1x64,c3p1x64"
