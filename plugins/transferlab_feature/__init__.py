"""Feature transfer: learn g on frozen features f_s(x) of a pretrained backbone."""
