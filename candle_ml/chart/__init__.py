"""Chart patterns, weeks long (double tops and bottoms, head and shoulders): Lo, Mamaysky & Wang's
rules on the kernel-smoothed close (``patterns``), the proposals a classifier scores (``model``),
the dataset that trains it (``dataset``) and its span-level scores (``evaluation``)."""
