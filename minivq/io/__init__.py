"""Files that a kill at any moment leaves whole: atomic writes (:mod:`.atomic`) and checkpoints (:mod:`.checkpoint`)."""
