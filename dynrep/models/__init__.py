"""Registered representation models; importing this package registers them all."""
from dynrep.models import rotation, vae  # noqa: F401  (registration side effect)
from dynrep.models import beta_vae  # noqa: F401  (registration side effect)
from dynrep.models import beta_tcvae  # noqa: F401  (registration side effect)
from dynrep.models import wae  # noqa: F401  (registration side effect)
from dynrep.models import cascade_vae  # noqa: F401  (registration side effect)
from dynrep.models import factor_vae  # noqa: F401  (registration side effect)
from dynrep.models import forward_vae  # noqa: F401  (registration side effect)
from dynrep.models import liegroup_vae  # noqa: F401  (registration side effect)
from dynrep.models import composition_net  # noqa: F401  (registration side effect)
from dynrep.models import rgrvae  # noqa: F401  (registration side effect)
from dynrep.models import mechanism_sparsity  # noqa: F401  (registration side effect)
from dynrep.models import icm_vae  # noqa: F401  (registration side effect)
from dynrep.models import ivae  # noqa: F401  (registration side effect)
from dynrep.models import slowvae  # noqa: F401  (registration side effect)
from dynrep.models import pcl  # noqa: F401  (registration side effect)
from dynrep.models.base import LossOutput, ModelConfig, Posterior, RepresentationModel
from dynrep.models.registry import build_model, list_models, register_model

__all__ = ["LossOutput", "ModelConfig", "Posterior", "RepresentationModel", "build_model", "list_models",
           "register_model"]
