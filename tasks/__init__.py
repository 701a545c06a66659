"""SeqIO registration modules (see README.md). Nothing in the lowres package imports this folder."""
