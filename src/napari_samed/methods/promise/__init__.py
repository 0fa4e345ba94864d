"""ProMISe (seed 001): a pretrained 2D SAM-family encoder adapted to 3D, one click -> a 3D mask."""

from .config import CPU, PAPER, PromiseConfig, default_config
from .loss import BoundaryAwareLoss, boundary_loss
from .method import Promise
from .model import ProMISeNet, build_model

__all__ = ["CPU", "PAPER", "BoundaryAwareLoss", "ProMISeNet", "Promise", "PromiseConfig", "boundary_loss",
           "build_model", "default_config"]
