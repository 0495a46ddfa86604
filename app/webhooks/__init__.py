"""Payment webhooks: Stripe and Standard Webhooks senders suspend, restore and end orders."""
