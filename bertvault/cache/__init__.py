"""The content-addressed cache under $BERTVAULT_HOME."""
