"""Training and evaluation: train_and_evaluate (trainer.py) and the pieces it wires together."""
