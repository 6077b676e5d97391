"""Tasks on runs: training, evaluation, denoising, generation, transfer and sample quality. zoo.api
exposes each as a public function."""
