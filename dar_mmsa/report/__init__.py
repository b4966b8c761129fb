"""Reports of the benchmark: LaTeX tables (``latex``), figures (``figures``), display names (``names``);
``reference/`` ships the DAR paper's reported tables."""
