"""GIFs of rollouts and latent traversals; seaborn/matplotlib figures."""
