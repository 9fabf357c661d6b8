# Two commands for a fresh machine (see README):
#   make demo   install, then the quickstart (scripts/demo.py): toy data, toy models, generated sound, metrics
#   make test   install and run the whole test suite
# make demo DEMO=dir DEMO_ARGS="--steps-scale 2" moves / changes the demo; make toy builds only the toy data.
PYTHON ?= python
PIP ?= $(PYTHON) -m pip
STAMP := .make/installed
TOY ?= data/toy
TOY_DURATION ?= 2
DEMO ?= demo
DEMO_ARGS ?=

.PHONY: install demo toy test test-fast clean-toy clean-demo

$(STAMP): requirements.txt setup.py
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps -e .
	@mkdir -p $(dir $(STAMP)) && touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PYTHON) scripts/demo.py --out $(DEMO) --toy $(TOY) $(DEMO_ARGS)

toy: $(STAMP)
	$(PYTHON) scripts/make_toy_dataset.py --out $(TOY) --duration $(TOY_DURATION)
	$(PYTHON) -m feature_extraction --videos $(TOY)/videos --out $(TOY)/features --duration $(TOY_DURATION)
	@echo "toy videos:   $(TOY)/videos/<class>/<id>.mp4  (splits: $(TOY)/toy_train.txt, $(TOY)/toy_valid.txt)"
	@echo "toy features: $(TOY)/features/<class>/{melspec,audio,feature_color}_*"

test: $(STAMP)
	$(PYTHON) -m pytest tests --durations=15

test-fast: $(STAMP)
	$(PYTHON) -m pytest tests -m "not slow"

clean-toy:
	rm -rf $(TOY)

clean-demo:
	rm -rf $(DEMO)
