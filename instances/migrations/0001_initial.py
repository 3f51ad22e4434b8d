"""The instance and pipeline models, moved from the `registry` app with their tables.

The tables already exist (made by `registry` 0001 under these names): this
migration only adds the models to the state of this app, and points the
content types (and so the admin permissions) at their new app.
"""

import django.contrib.postgres.fields
import django.core.validators
import django.db.models.deletion
import instances.models
from django.db import migrations, models

MOVED_MODELS = ("instance", "pipelinedistribution", "pipelinederivative")


def _relabel(apps, schema_editor, source: str, target: str) -> None:
    content_types = apps.get_model("contenttypes", "ContentType")
    for model in MOVED_MODELS:
        if not content_types.objects.filter(app_label=target, model=model).exists():
            content_types.objects.filter(app_label=source, model=model).update(app_label=target)


def move_content_types(apps, schema_editor) -> None:
    _relabel(apps, schema_editor, "registry", "instances")


def move_content_types_back(apps, schema_editor) -> None:
    _relabel(apps, schema_editor, "instances", "registry")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("registry", "0004_registry_revision"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Instance',
                    fields=[
                        ('id', models.CharField(max_length=64, primary_key=True, serialize=False, validators=[django.core.validators.RegexValidator('^[A-Za-z0-9][A-Za-z0-9._+-]*$', 'Use letters, digits and . _ + - only, starting with a letter or digit.')])),
                        ('name', models.CharField(help_text='Full name of the instance.', max_length=255)),
                        ('gpg_name', models.CharField(max_length=255, verbose_name='GPG name')),
                        ('gpg_email', models.EmailField(max_length=254, verbose_name='GPG email')),
                        ('architectures', django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=32, validators=[django.core.validators.RegexValidator('^[A-Za-z0-9][A-Za-z0-9._+-]*$', 'Use letters, digits and . _ + - only, starting with a letter or digit.')]), blank=True, default=list, help_text='Pipeline architectures besides the host one, in order.', size=None)),
                        ('formats', django.contrib.postgres.fields.ArrayField(base_field=models.CharField(choices=[('deb', 'deb'), ('rpm', 'rpm'), ('osi', 'osi')], max_length=8), blank=True, default=list, help_text='Artifact formats of the pipelines, in the order of the instance file.', size=None)),
                        ('token_key', models.CharField(default=instances.models.new_token_key, help_text='Secret used as is to sign and verify API tokens (HMAC).', max_length=255)),
                        ('source_file', models.CharField(blank=True, max_length=1024)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        'db_table': 'registry_instance',
                        'ordering': ['id'],
                    },
                ),
                migrations.CreateModel(
                    name='PipelineDerivative',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=64, validators=[django.core.validators.RegexValidator('^[A-Za-z0-9][A-Za-z0-9._+-]*$', 'Use letters, digits and . _ + - only, starting with a letter or digit.')])),
                        ('formats', django.contrib.postgres.fields.ArrayField(base_field=models.CharField(choices=[('deb', 'deb'), ('rpm', 'rpm'), ('osi', 'osi')], max_length=8), blank=True, default=list, help_text='Formats restricted to; empty means all the formats of the parent.', size=None)),
                        ('position', models.PositiveIntegerField(default=0)),
                        ('extends', models.ForeignKey(blank=True, help_text='Parent derivative; empty only for main.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='children', to='instances.pipelinederivative')),
                        ('instance', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='derivatives', to='instances.instance')),
                    ],
                    options={
                        'db_table': 'registry_pipelinederivative',
                        'ordering': ['instance_id', 'position'],
                        'constraints': [models.UniqueConstraint(fields=('instance', 'name'), name='pipeline_derivative_unique_name')],
                    },
                ),
                migrations.CreateModel(
                    name='PipelineDistribution',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('format', models.CharField(choices=[('deb', 'deb'), ('rpm', 'rpm'), ('osi', 'osi')], max_length=8)),
                        ('name', models.CharField(max_length=64, validators=[django.core.validators.RegexValidator('^[A-Za-z0-9][A-Za-z0-9._+-]*$', 'Use letters, digits and . _ + - only, starting with a letter or digit.')])),
                        ('environment', models.CharField(blank=True, help_text='Build environment; empty for osi.', max_length=128)),
                        ('tag', models.CharField(blank=True, help_text='Version dist tag; empty for osi.', max_length=64)),
                        ('mirror', models.CharField(blank=True, max_length=1024)),
                        ('components', models.CharField(blank=True, max_length=255)),
                        ('modules', django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=128), blank=True, default=list, size=None)),
                        ('position', models.PositiveIntegerField(default=0)),
                        ('instance', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='distributions', to='instances.instance')),
                    ],
                    options={
                        'db_table': 'registry_pipelinedistribution',
                        'ordering': ['instance_id', 'position'],
                        'constraints': [models.UniqueConstraint(fields=('instance', 'name'), name='pipeline_distribution_unique_name')],
                    },
                ),
            ],
            database_operations=[
                migrations.RunPython(move_content_types, move_content_types_back),
            ],
        ),
    ]
