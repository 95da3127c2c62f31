"""Text backbones: sentence-transformers (``sbert:``), transformers encoders (``hf:``),
causal LMs (``gpt:``) and tiny from-scratch BERT/GPT configurations (``bert:tiny``,
``gpt:tiny``), all usable offline where their weights are packaged or local."""
