"""patchcert training: ablation-trained base classifiers for (De)Randomized Smoothing
(Levine & Feizi 2020) and their export to ONNX / TF.js with a patchcert model manifest."""
