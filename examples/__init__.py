"""Training code of the models that ship with the platform. Each module gives a data loader and a trainer,
named by its spec in configs/models/; flows and tasks never import it directly."""
