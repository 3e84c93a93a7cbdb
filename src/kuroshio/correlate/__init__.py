"""The joint cyber-defence centre: observations from partners' sensors, indicator matching, sightings."""
