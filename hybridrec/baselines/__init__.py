"""Non-language-model baselines every language-model path is compared with."""
