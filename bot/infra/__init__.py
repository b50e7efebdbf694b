"""Infrastructure the floors above share: settings, conversation stores, the webhook event inbox, the
background pool, logging and where the model file comes from."""
