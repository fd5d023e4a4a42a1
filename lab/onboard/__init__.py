"""Onboarding a configuration without retraining: the graded item bank, graders, live
calibration against an OpenAI-compatible endpoint, and a stand-in endpoint for tests."""
