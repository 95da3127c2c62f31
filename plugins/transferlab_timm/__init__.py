"""Vision backbones from timm, with offline ImageNet weights for EfficientNet-Lite0/1/2."""
