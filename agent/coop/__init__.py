"""What comes back from the coop's hub: district benchmarks and alerts for this shop."""
