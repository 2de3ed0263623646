"""What runs leave behind: records (the results), saved weights, the sweep's progress, MLflow."""
